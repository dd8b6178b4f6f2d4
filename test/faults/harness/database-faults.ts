/**
 * Database-side faults and the means to time them: a lock holder that stops the writer
 * inside its transaction (so "mid-batch" is a fact, not a guess), a view of the test
 * database's backends (each service process names itself through application_name),
 * and pg_terminate_backend over all of them.
 */
import { sql } from 'kysely';
import pg from 'pg';
import { waitFor } from '../../../tools/wait-for.ts';
import type { FaultRig } from './fault-rig.ts';

/** The test database's URL with an application name, so pg_stat_activity tells processes apart. */
export function withApplicationName(databaseUrl: string, name: string): string {
  const url = new URL(databaseUrl);
  url.searchParams.set('application_name', name);
  return url.toString();
}

export interface Backend {
  pid: number;
  application: string;
  state: string | null;
  waitEventType: string | null;
  inTransaction: boolean;
}

/** Backends of the test database other than the caller's. */
export async function databaseBackends(rig: FaultRig): Promise<Backend[]> {
  const result = await sql<{ pid: number; application_name: string; state: string | null; wait_event_type: string | null; in_transaction: boolean }>`
    select pid, application_name, state, wait_event_type, xact_start is not null as in_transaction
      from pg_stat_activity
     where datname = ${rig.databaseName} and pid <> pg_backend_pid()`.execute(rig.database.db);
  return result.rows.map((row) => ({
    pid: row.pid,
    application: row.application_name,
    state: row.state,
    waitEventType: row.wait_event_type,
    inTransaction: row.in_transaction,
  }));
}

/** Polls until a backend matches; returns it. */
export async function waitForBackend(rig: FaultRig, what: string, match: (backend: Backend) => boolean, timeoutMs: number, intervalMs = 20): Promise<Backend> {
  let found: Backend | undefined;
  await waitFor(
    what,
    async () => {
      found = (await databaseBackends(rig)).find(match);
      return found !== undefined;
    },
    { timeoutMs, intervalMs },
  );
  return found as Backend;
}

/** `select pg_terminate_backend(pid) ...` over every backend of the test database but the caller's; returns how many. */
export async function terminateBackends(rig: FaultRig): Promise<number> {
  const result = await sql<{ terminated: boolean }>`
    select pg_terminate_backend(pid) as terminated
      from pg_stat_activity
     where datname = ${rig.databaseName} and pid <> pg_backend_pid()`.execute(rig.database.db);
  return result.rows.filter((row) => row.terminated).length;
}

export interface LockHolder {
  pid: number;
  /** Commits, releasing the locks (a no-op if the backend was terminated meanwhile). */
  release(): Promise<void>;
}

/**
 * Holds locks on `instances` in an open transaction of its own: 'rows' (FOR UPDATE on
 * every row) stops the writer, whose batch locks its rows first; 'table' (ACCESS
 * EXCLUSIVE) also stops the agents' reads.
 */
export async function holdInstanceLocks(rig: FaultRig, mode: 'rows' | 'table'): Promise<LockHolder> {
  const client = new pg.Client({ connectionString: withApplicationName(rig.database.url, 'fault-lock-holder') });
  let lost = false;
  // Terminated by the test's own pg_terminate_backend: the locks go with it, which is the point.
  client.on('error', () => {
    lost = true;
  });
  await client.connect();
  await client.query('begin');
  await client.query(mode === 'rows' ? 'select uuid from instances for update' : 'lock table instances in access exclusive mode');
  const { rows } = await client.query<{ pid: number }>('select pg_backend_pid() as pid');
  return {
    pid: rows[0]?.pid ?? -1,
    async release() {
      if (!lost) await client.query('commit').catch(() => undefined);
      await client.end().catch(() => undefined);
    },
  };
}
