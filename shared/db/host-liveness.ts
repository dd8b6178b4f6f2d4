/**
 * Host liveness in PostgreSQL: what the tick producer's leader reads to judge it, stores
 * (states, transitions as an outbox, pipeline health), and what every producer and the
 * CLI read back. Times come from the database's clock.
 */
import { type Kysely, sql, type Transaction } from 'kysely';
import type { LivenessState } from '../messages/host-liveness.ts';
import type { Database } from './database.ts';

type Db = Kysely<Database> | Transaction<Database>;

/** The pipeline_health component of the report path: `silent` while most hosts go quiet together. */
export const REPORT_PATH = 'report-path';

export interface LivenessInputRow {
  host: string;
  state: LivenessState | null;
  trackedSince: Date | null;
  lastReceivedAt: Date | null;
  lastSyncedAt: Date | null;
  consecutiveFailures: number;
}

/** Every enabled host with its stored judgement and receipts (null where there are none). */
export async function readLivenessInputs(db: Db): Promise<LivenessInputRow[]> {
  const rows = await db
    .selectFrom('compute_hosts as h')
    .leftJoin('host_liveness as l', 'l.host', 'h.host')
    .leftJoin('host_report_receipts as r', 'r.host', 'h.host')
    .select(['h.host', 'l.state', 'l.tracked_since', 'r.last_received_at', 'r.last_synced_at', 'r.consecutive_failures'])
    .where('h.enabled', '=', true)
    .orderBy('h.host')
    .execute();
  return rows.map((row) => ({
    host: row.host,
    state: row.state,
    trackedSince: row.tracked_since,
    lastReceivedAt: row.last_received_at,
    lastSyncedAt: row.last_synced_at,
    consecutiveFailures: row.consecutive_failures ?? 0,
  }));
}

/** Stops judging hosts that are no longer enabled; returns them. */
export async function forgetDisabledHosts(trx: Transaction<Database>): Promise<string[]> {
  const rows = await trx
    .deleteFrom('host_liveness')
    .where((eb) => eb.not(eb.exists(eb.selectFrom('compute_hosts').select('host').where('enabled', '=', true).whereRef('compute_hosts.host', '=', 'host_liveness.host'))))
    .returning('host')
    .execute();
  return rows.map((row) => row.host);
}

export interface LivenessUpdate {
  host: string;
  state: LivenessState;
  reason: string;
}

/** Starts judging new hosts (tracked from now). */
export async function insertLiveness(trx: Transaction<Database>, hosts: readonly LivenessUpdate[]): Promise<void> {
  if (hosts.length === 0) return;
  await trx.insertInto('host_liveness').values(hosts.map(({ host, state, reason }) => ({ host, state, reason }))).execute();
}

/** Stores changed states; `since` moves to now. */
export async function updateLiveness(trx: Transaction<Database>, hosts: readonly LivenessUpdate[]): Promise<void> {
  for (const { host, state, reason } of hosts) {
    await trx.updateTable('host_liveness').set({ state, reason, since: sql<Date>`now()` }).where('host', '=', host).execute();
  }
}

export interface PendingTransition {
  transitionId: string;
  host: string;
  toState: LivenessState;
  payload: unknown;
}

export async function insertTransitions(
  trx: Transaction<Database>,
  transitions: ReadonlyArray<{ transitionId: string; host: string; fromState: LivenessState; toState: LivenessState; payload: unknown }>,
): Promise<void> {
  if (transitions.length === 0) return;
  await trx
    .insertInto('host_liveness_transitions')
    .values(
      transitions.map((t) => ({
        transition_id: t.transitionId,
        host: t.host,
        from_state: t.fromState,
        to_state: t.toState,
        payload: JSON.stringify(t.payload),
      })),
    )
    .execute();
}

/** Transitions stored but not yet confirmed by the broker, oldest first. */
export async function listUnpublishedTransitions(db: Db, limit: number): Promise<PendingTransition[]> {
  const rows = await db
    .selectFrom('host_liveness_transitions')
    .select(['transition_id', 'host', 'to_state', 'payload'])
    .where('published_at', 'is', null)
    .orderBy('seq')
    .limit(limit)
    .execute();
  return rows.map((row) => ({ transitionId: row.transition_id, host: row.host, toState: row.to_state, payload: row.payload }));
}

export async function markTransitionsPublished(db: Db, transitionIds: readonly string[]): Promise<void> {
  if (transitionIds.length === 0) return;
  await db
    .updateTable('host_liveness_transitions')
    .set({ published_at: sql`now()` })
    .where('transition_id', '=', sql<string>`any(${sql.val([...transitionIds])}::uuid[])`)
    .execute();
}

/** Records a component's pipeline health; returns the state it had before (undefined: never recorded). */
export async function recordPipelineHealth(
  trx: Transaction<Database>,
  health: { component: string; state: string; detail: string },
): Promise<string | undefined> {
  const previous = await trx.selectFrom('pipeline_health').select('state').where('component', '=', health.component).forUpdate().executeTakeFirst();
  await trx
    .insertInto('pipeline_health')
    .values(health)
    .onConflict((oc) =>
      oc.column('component').doUpdateSet({
        state: sql`excluded.state`,
        detail: sql`excluded.detail`,
        since: sql`case when pipeline_health.state = excluded.state then pipeline_health.since else now() end`,
      }),
    )
    .execute();
  return previous?.state;
}

export interface HostLivenessView {
  host: string;
  state: LivenessState;
  since: Date;
  reason: string;
  consecutiveFailures: number;
  lastReceivedAt: Date | null;
  lastSyncedAt: Date | null;
}

/** What the leader last judged, for metrics and `virtsync status`. */
export async function listHostLiveness(db: Db): Promise<HostLivenessView[]> {
  const rows = await db
    .selectFrom('host_liveness as l')
    .leftJoin('host_report_receipts as r', 'r.host', 'l.host')
    .select(['l.host', 'l.state', 'l.since', 'l.reason', 'r.consecutive_failures', 'r.last_received_at', 'r.last_synced_at'])
    .orderBy('l.host')
    .execute();
  return rows.map((row) => ({
    host: row.host,
    state: row.state,
    since: row.since,
    reason: row.reason,
    consecutiveFailures: row.consecutive_failures ?? 0,
    lastReceivedAt: row.last_received_at,
    lastSyncedAt: row.last_synced_at,
  }));
}

export interface PipelineHealthView {
  component: string;
  state: string;
  since: Date;
  detail: string;
}

export async function listPipelineHealth(db: Db): Promise<PipelineHealthView[]> {
  return db.selectFrom('pipeline_health').select(['component', 'state', 'since', 'detail']).orderBy('component').execute();
}

/**
 * Hosts unreachable for at least `afterMs` (the database's clock), unless the report path is
 * silent: mass silence is virtsync's own failure, and says nothing about the hosts.
 */
export async function listHostsUnreachableFor(db: Db, afterMs: number): Promise<string[]> {
  const rows = await db
    .selectFrom('host_liveness')
    .select('host')
    .where('state', '=', 'unreachable')
    .where('since', '<=', sql<Date>`now() - make_interval(secs => ${afterMs / 1000})`)
    .where((eb) => eb.not(eb.exists(eb.selectFrom('pipeline_health').select('component').where('component', '=', REPORT_PATH).where('state', '=', 'silent'))))
    .orderBy('host')
    .execute();
  return rows.map((row) => row.host);
}
