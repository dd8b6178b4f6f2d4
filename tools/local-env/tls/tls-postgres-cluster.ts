/**
 * A PostgreSQL cluster of the test's own (the engines harness, tools/local-env/engines) that
 * accepts TCP connections over TLS only: agents log in with their client certificate (CN
 * mapped to `agent:<CN>` by pg_ident), every other role with a password (scram-sha-256); a
 * plain-text TCP connection is rejected. The test administers it as `postgres` over the
 * Unix socket. `plainText` accepts password logins without TLS too (bench:tls-cost).
 */
import { execFile } from 'node:child_process';
import { chmod, chown, copyFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { createPostgresCluster } from '../engines/postgres-cluster.ts';
import type { TestCertificates } from './test-certificates.ts';

const run = promisify(execFile);

export interface TlsPostgresCluster {
  port: number;
  /** The superuser over the Unix socket (trust): the operator's connection in tests. */
  adminUrl(database: string): string;
  stop(): Promise<void>;
}

/** pg_ident map name the agents' certificate logins go through (see docs/security.md). */
export const AGENT_CERT_MAP = 'virtsync-agents';

export async function startTlsPostgresCluster(options: { certificates: TestCertificates; plainText?: boolean }): Promise<TlsPostgresCluster> {
  const { certificates } = options;
  // The server reads its key only if the postgres user owns it, mode 0600.
  const tlsDir = path.join(path.dirname(certificates.caFile), 'postgres-server');
  await mkdir(tlsDir, { recursive: true });
  const postgres = await ids('postgres');
  const install = async (from: string, name: string): Promise<string> => {
    const target = path.join(tlsDir, name);
    await copyFile(from, target);
    await chown(target, postgres.uid, postgres.gid);
    await chmod(target, 0o600);
    return target;
  };
  const cluster = await createPostgresCluster({
    config: [
      'ssl = on',
      `ssl_cert_file = '${await install(certificates.server.certFile, 'server.crt')}'`,
      `ssl_key_file = '${await install(certificates.server.keyFile, 'server.key')}'`,
      `ssl_ca_file = '${await install(certificates.caFile, 'ca.crt')}'`,
    ],
    hba: [
      // Agents: certificate only, CN → login through the map. Members of virtsync_agent only.
      `hostssl all +virtsync_agent 127.0.0.1/32 cert map=${AGENT_CERT_MAP}`,
      `hostssl all +virtsync_agent ::1/128 cert map=${AGENT_CERT_MAP}`,
      'hostssl all all 127.0.0.1/32 scram-sha-256',
      'hostssl all all ::1/128 scram-sha-256',
      ...(options.plainText === true ? ['host all all 127.0.0.1/32 scram-sha-256', 'host all all ::1/128 scram-sha-256'] : ['hostnossl all all 0.0.0.0/0 reject', 'hostnossl all all ::/0 reject']),
    ],
  });
  const adminUrl = (database: string): string => `postgres://postgres@/${database}?host=/var/run/postgresql&port=${cluster.port}`;
  try {
    // A host's certificate (CN = host) logs in as the role `agent:<host>`, nothing else.
    await writeFile(path.join(cluster.configDir, 'pg_ident.conf'), `${AGENT_CERT_MAP} /^(.+)$ agent:\\1\n`);
    const admin = new pg.Client({ connectionString: adminUrl('postgres') });
    await admin.connect();
    await admin.query('select pg_reload_conf()').finally(() => admin.end());
  } catch (err) {
    await cluster.remove();
    throw err;
  }
  return { port: cluster.port, adminUrl, stop: () => cluster.remove() };
}

async function ids(user: string): Promise<{ uid: number; gid: number }> {
  const [uid, gid] = await Promise.all([run('id', ['-u', user]), run('id', ['-g', user])]);
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}
