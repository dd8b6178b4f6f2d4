/**
 * A libvirtd of the test's own, on its own socket, for what the shared one must never
 * undergo (being killed and restarted). It runs in a private mount namespace with empty
 * tmpfs over libvirt's state directories, so it shares no pid file or state with the
 * shared daemon. Needs root, like infra/local/start-libvirtd.sh.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openReadOnly } from '../../native/libvirt-bulk/index.ts';

const STATE_DIRS = ['/run/libvirt', '/var/lib/libvirt', '/var/cache/libvirt', '/var/log/libvirt'];
const START_TIMEOUT_MS = 30_000;

export interface PrivateLibvirtd {
  /** test+unix:///default on this daemon. */
  uri: string;
  /** SIGKILL, as a crash would: clients' connections break. */
  kill(): Promise<void>;
  /** Starts it again on the same socket (after kill). */
  start(): Promise<void>;
  /** Kills it and removes its directory; safe twice. */
  remove(): Promise<void>;
}

export async function startPrivateLibvirtd(): Promise<PrivateLibvirtd> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'virtsync-libvirtd-'));
  const config = path.join(dir, 'libvirtd.conf');
  await writeFile(config, `unix_sock_dir = "${dir}"\nunix_sock_rw_perms = "0700"\nauth_unix_rw = "none"\nauth_unix_ro = "none"\n`);
  const uri = `test+unix:///default?socket=${dir}/libvirt-sock`;
  let child: ChildProcess | undefined;

  const kill = async (): Promise<void> => {
    const current = child;
    child = undefined;
    if (current === undefined || current.exitCode !== null || current.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => current.once('exit', () => resolve()));
    current.kill('SIGKILL');
    await exited;
  };

  const start = async (): Promise<void> => {
    const mounts = STATE_DIRS.map((d) => `mount -t tmpfs tmpfs ${d}`).join(' && ');
    // unshare and sh exec: the child's pid is libvirtd's.
    child = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', `${mounts} && exec libvirtd --config ${config} --pid-file ${dir}/pid`], {
      stdio: 'ignore',
    });
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`private libvirtd exited with ${child.exitCode}`);
      const connection = await openReadOnly(uri).catch(() => undefined);
      if (connection !== undefined) {
        await connection.close();
        return;
      }
      if (Date.now() > deadline) throw new Error(`private libvirtd did not answer on ${uri} in ${START_TIMEOUT_MS} ms`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };

  await start();
  return {
    uri,
    kill,
    start,
    async remove() {
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
