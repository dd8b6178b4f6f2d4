/**
 * A PostgreSQL cluster of the test's own (pg_createcluster, its own port) that accepts
 * TCP connections over TLS only: agents log in with their client certificate (CN mapped
 * to their login by pg_ident), every other role with a password (scram-sha-256). The
 * test administers it as `postgres` over the Unix socket. The machine's shared cluster is
 * never touched; the cluster and its config directory are removed by stop().
 */
import { execFile } from 'node:child_process';
import { chown, copyFile, chmod, rm, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './free-port.ts';
import type { TestCertificates } from './test-certificates.ts';

const run = promisify(execFile);
const VERSION = '15';

export interface TlsPostgresCluster {
  port: number;
  /** The superuser over the Unix socket (trust): the operator's connection in tests. */
  adminUrl(database: string): string;
  stop(): Promise<void>;
}

/** pg_ident map name the agents' certificate logins go through (see docs/security.md). */
export const AGENT_CERT_MAP = 'virtsync-agents';

export async function startTlsPostgresCluster(options: { name: string; certificates: TestCertificates; plainText?: boolean }): Promise<TlsPostgresCluster> {
  const { name, certificates } = options;
  const port = await freePort();
  const confDir = `/etc/postgresql/${VERSION}/${name}`;
  let created = false;
  const stop = async (): Promise<void> => {
    if (!created) return;
    created = false;
    await run('pg_dropcluster', [VERSION, name, '--stop']).catch(() => undefined);
    await rm(confDir, { recursive: true, force: true });
  };
  try {
    await run('pg_createcluster', [VERSION, name, '--port', String(port)]);
    created = true;
    const postgres = userInfo().uid === 0 ? await ids('postgres') : undefined;
    const install = async (from: string, to: string): Promise<string> => {
      const target = path.join(confDir, to);
      await copyFile(from, target);
      if (postgres !== undefined) await chown(target, postgres.uid, postgres.gid);
      await chmod(target, 0o600);
      return target;
    };
    const settings = [
      'ssl = on',
      `ssl_cert_file = '${await install(certificates.server.certFile, 'server.crt')}'`,
      `ssl_key_file = '${await install(certificates.server.keyFile, 'server.key')}'`,
      `ssl_ca_file = '${await install(certificates.caFile, 'ca.crt')}'`,
      "listen_addresses = '127.0.0.1,::1'",
    ];
    await writeFile(path.join(confDir, 'conf.d', 'virtsync-tls.conf'), `${settings.join('\n')}\n`);
    await writeFile(
      path.join(confDir, 'pg_hba.conf'),
      [
        'local all postgres trust',
        // Agents: certificate only, CN → login through the map. Members of virtsync_agent only.
        `hostssl all +virtsync_agent 127.0.0.1/32 cert map=${AGENT_CERT_MAP}`,
        `hostssl all +virtsync_agent ::1/128 cert map=${AGENT_CERT_MAP}`,
        'hostssl all all 127.0.0.1/32 scram-sha-256',
        'hostssl all all ::1/128 scram-sha-256',
        // Only when asked (bench:tls-cost compares the two).
        ...(options.plainText === true ? ['hostnossl all all 127.0.0.1/32 scram-sha-256'] : []),
        '',
      ].join('\n'),
    );
    // A host's certificate (CN = host) logs in as the role `agent:<host>`, nothing else.
    await writeFile(path.join(confDir, 'pg_ident.conf'), `${AGENT_CERT_MAP} /^(.+)$ agent:\\1\n`);
    await run('pg_ctlcluster', [VERSION, name, 'start']);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    port,
    adminUrl: (database) => `postgres://postgres@/${database}?host=/var/run/postgresql&port=${port}`,
    stop,
  };
}

async function ids(user: string): Promise<{ uid: number; gid: number }> {
  const [uid, gid] = await Promise.all([run('id', ['-u', user]), run('id', ['-g', user])]);
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}
