/**
 * A PostgreSQL cluster of the test's own (Debian's pg_createcluster), on a port of its
 * own, with trust authentication for local and 127.0.0.1 connections, that the test may
 * restart, stop and start at will without touching the machine's shared cluster. A
 * caller may add postgresql.conf lines (TLS, ...) and pg_hba.conf lines, which come
 * before the defaults so they win (hostssl ... cert, scram-sha-256, ...).
 */
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { registerTeardown, uniqueEngineName, unregisterTeardown } from './engine-registry.ts';
import { freePorts } from './free-port.ts';

const VERSION = '15';

export interface PostgresClusterOptions {
  /** Lines for postgresql.conf (written to conf.d, read after the defaults). */
  config?: readonly string[];
  /** Lines for pg_hba.conf, placed before the default trust lines. */
  hba?: readonly string[];
}

export type ShutdownMode = 'smart' | 'fast' | 'immediate';

export interface PostgresCluster {
  name: string;
  port: number;
  /** postgres://postgres@127.0.0.1:<port>/postgres: a superuser, for test setup. */
  serverUrl: string;
  /** Where pg_createcluster put the config (postgresql.conf, pg_hba.conf, conf.d/). */
  configDir: string;
  restart(mode: ShutdownMode): Promise<void>;
  stop(mode: ShutdownMode): Promise<void>;
  start(): Promise<void>;
  /** Stops and drops the cluster, with its config and log. */
  remove(): Promise<void>;
}

const run = promisify(execFile);

export async function createPostgresCluster(options: PostgresClusterOptions = {}): Promise<PostgresCluster> {
  const name = uniqueEngineName();
  const [port] = (await freePorts(1)) as [number];
  const configDir = `/etc/postgresql/${VERSION}/${name}`;
  const teardown = (): void => {
    execFileSync('pg_dropcluster', [VERSION, name, '--stop'], { stdio: 'ignore' });
    rmSync(configDir, { recursive: true, force: true });
    rmSync(`/var/log/postgresql/postgresql-${VERSION}-${name}.log`, { force: true });
  };
  registerTeardown(name, teardown);
  const ctl = (...args: string[]): Promise<unknown> => run('pg_ctlcluster', [VERSION, name, ...args]);
  try {
    await run('pg_createcluster', [VERSION, name, '--port', String(port), '--', '--auth-host=trust', '--auth-local=trust']);
    writeFileSync(`${configDir}/conf.d/virtsync-test.conf`, `${(options.config ?? []).join('\n')}\n`);
    if ((options.hba ?? []).length > 0) {
      const hbaFile = `${configDir}/pg_hba.conf`;
      writeFileSync(hbaFile, `${(options.hba ?? []).join('\n')}\n${readFileSync(hbaFile, 'utf8')}`);
    }
    await ctl('start');
  } catch (err) {
    unregisterTeardown(name);
    teardown();
    throw err;
  }
  return {
    name,
    port,
    serverUrl: `postgres://postgres@127.0.0.1:${port}/postgres`,
    configDir,
    restart: async (mode) => void (await ctl('restart', '-m', mode)),
    stop: async (mode) => void (await ctl('stop', '-m', mode)),
    start: async () => void (await ctl('start')),
    async remove() {
      unregisterTeardown(name);
      teardown();
    },
  };
}
