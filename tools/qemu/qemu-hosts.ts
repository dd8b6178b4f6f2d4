/**
 * QEMU compute hosts on this machine for the hypervisor lane and the QEMU demo: one
 * namespaced libvirtd per host through infra/local/start-qemu-hosts.sh, TCG guests on
 * them, and what a test or an operator does behind the cloud's back (virsh). Everything
 * started is removed by stop(), and also when the process exits or is signalled first.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { fromLibvirtState, type PowerState } from '../../shared/power-state.ts';
import { runVirsh } from './run-virsh.ts';
import { type GuestOptions, guestXml } from './guest-xml.ts';

const SCRIPT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../infra/local/start-qemu-hosts.sh');
const execFileAsync = promisify(execFile);

export interface HostedDomain {
  host: string;
  uuid: string;
  name: string;
  state: PowerState;
}

export interface QemuHosts {
  dir: string;
  hosts: readonly string[];
  uri(host: string): string;
  /** LIBVIRT_URI for an agent serving these hosts (`{host}` is its placeholder). */
  uriTemplate: string;
  virsh(host: string, ...args: string[]): Promise<string>;
  /** Defines a guest on a host and starts it (unless told not to); returns its UUID. */
  defineGuest(host: string, options: Omit<GuestOptions, 'uuid'> & { start?: boolean }): Promise<string>;
  /** Every domain of every host, with its state, read through virsh. */
  domains(): Promise<HostedDomain[]>;
  /** The pid of a running guest's QEMU process. */
  qemuPid(host: string, name: string): Promise<number>;
  /** Stops and restarts a host's libvirtd; its guests keep running. */
  restartLibvirtd(host: string): Promise<void>;
  /** Stops a host's libvirtd and leaves it down (its guests keep running) until startLibvirtd. */
  stopLibvirtd(host: string): Promise<void>;
  startLibvirtd(host: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startQemuHosts(options: { hosts: readonly string[]; dir?: string }): Promise<QemuHosts> {
  const dir = options.dir ?? (await mkdtemp(path.join(os.tmpdir(), 'virtsync-qemu-')));
  const down = (): void => {
    try {
      execFileSync('bash', [SCRIPT, 'down', dir], { stdio: 'ignore' });
    } catch {
      // Exiting anyway: a leftover is what `start-qemu-hosts.sh down <dir>` removes by hand.
    }
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    down();
    process.kill(process.pid, signal);
  };
  process.once('exit', down);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const forget = (): void => {
    process.off('exit', down);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };

  let uris: Map<string, string>;
  try {
    const { stdout } = await execFileAsync('bash', [SCRIPT, 'up', dir, ...options.hosts], { timeout: 120_000 });
    // One "<host> <uri>" line per host.
    uris = new Map(stdout.split('\n').flatMap((line) => {
      const match = /^(\S+) (\S+)$/.exec(line.trim());
      return match?.[1] === undefined || match[2] === undefined ? [] : [[match[1], match[2]] as const];
    }));
  } catch (err) {
    down();
    forget();
    throw err;
  }
  const uri = (host: string): string => {
    const found = uris.get(host);
    if (found === undefined) throw new Error(`no QEMU host ${host}`);
    return found;
  };
  const virsh = (host: string, ...args: string[]): Promise<string> => runVirsh(uri(host), args);
  const daemonCommand = async (command: 'restart' | 'stop' | 'start', host: string): Promise<void> => {
    await execFileAsync('bash', [SCRIPT, command, dir, host], { timeout: 60_000 });
  };

  return {
    dir,
    hosts: options.hosts,
    uri,
    uriTemplate: `qemu+unix:///system?socket=${dir}/{host}/libvirt-sock`,
    virsh,
    async defineGuest(host, { start = true, ...guest }) {
      const uuid = randomUUID();
      const file = path.join(dir, `${guest.name}.xml`);
      await writeFile(file, guestXml({ ...guest, uuid }));
      await virsh(host, 'define', file);
      if (start) await virsh(host, 'start', guest.name);
      return uuid;
    },
    async domains() {
      const perHost = await Promise.all(options.hosts.map(async (host) => listDomains(host, await virsh(host, 'list', '--all', '--uuid', '--name'), await virsh(host, 'domstats', '--state'))));
      return perHost.flat();
    },
    async qemuPid(host, name) {
      const pid = Number((await readFile(path.join(dir, host, 'run', 'qemu', `${name}.pid`), 'utf8')).trim());
      if (!Number.isInteger(pid) || pid <= 0) throw new Error(`no QEMU pid for ${name} on ${host}`);
      return pid;
    },
    restartLibvirtd: (host) => daemonCommand('restart', host),
    stopLibvirtd: (host) => daemonCommand('stop', host),
    startLibvirtd: (host) => daemonCommand('start', host),
    async stop() {
      forget();
      await execFileAsync('bash', [SCRIPT, 'down', dir], { timeout: 60_000 });
    },
  };
}

/** `virsh list --all --uuid --name` (uuid, name per line) joined with `virsh domstats --state` (by name). */
export function listDomains(host: string, listing: string, stats: string): HostedDomain[] {
  const states = new Map<string, number>();
  let current: string | undefined;
  for (const line of stats.split('\n')) {
    const domain = /^Domain: '(.+)'$/.exec(line.trim());
    if (domain !== null) current = domain[1];
    const state = /^state\.state=(\d+)$/.exec(line.trim());
    if (state !== null && current !== undefined) states.set(current, Number(state[1]));
  }
  return listing
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .flatMap((line) => {
      const [uuid = '', name = ''] = line.split(/\s+/, 2);
      const state = fromLibvirtState(states.get(name) ?? -1);
      // A domain that went away between the two calls is not on this host any more.
      return state === undefined ? [] : [{ host, uuid: uuid.toLowerCase(), name, state }];
    });
}
