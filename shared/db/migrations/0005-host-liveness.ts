// Frozen once merged: later changes go in a new, higher-numbered migration.
//
// Host liveness (issue 12): what the audit subscriber received from each host, judged by
// the database's clock of receipt (host_report_receipts); each enabled host's liveness
// state, kept by the tick producer's leader (host_liveness); every transition, stored and
// published from here (host_liveness_transitions); and whether the report path itself is
// silent (pipeline_health).
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('host_report_receipts')
    .addColumn('host', 'text', (col) => col.primaryKey())
    .addColumn('last_received_at', 'timestamptz', (col) => col.notNull())
    .addColumn('last_outcome', 'text', (col) => col.notNull())
    // When the newest synced report was received (null: none yet).
    .addColumn('last_synced_at', 'timestamptz')
    // Periodic syncs failed or skipped since the last synced one, counted once per tick cycle.
    .addColumn('consecutive_failures', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('last_counted_cycle', 'bigint')
    .execute();

  await db.schema
    .createTable('host_liveness')
    .addColumn('host', 'text', (col) => col.primaryKey())
    .addColumn('state', 'text', (col) => col.notNull().check(sql`state in ('healthy', 'failing', 'unreachable')`))
    .addColumn('since', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    // When the leader began judging the host (it was enabled): silence counts from here at the earliest.
    .addColumn('tracked_since', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('reason', 'text', (col) => col.notNull())
    .execute();

  await db.schema
    .createTable('host_liveness_transitions')
    .addColumn('seq', 'bigserial', (col) => col.primaryKey())
    .addColumn('transition_id', 'uuid', (col) => col.notNull().unique())
    .addColumn('host', 'text', (col) => col.notNull())
    .addColumn('from_state', 'text', (col) => col.notNull())
    .addColumn('to_state', 'text', (col) => col.notNull())
    .addColumn('changed_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('payload', 'jsonb', (col) => col.notNull())
    .addColumn('published_at', 'timestamptz')
    .execute();
  await db.schema
    .createIndex('host_liveness_transitions_unpublished_idx')
    .on('host_liveness_transitions')
    .columns(['seq'])
    .where(sql.ref('published_at'), 'is', null)
    .execute();

  await db.schema
    .createTable('pipeline_health')
    .addColumn('component', 'text', (col) => col.primaryKey())
    .addColumn('state', 'text', (col) => col.notNull())
    .addColumn('since', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('detail', 'text', (col) => col.notNull())
    .execute();

  for (const grant of [
    'grant select, insert, update on host_report_receipts to virtsync_audit',
    'grant select on compute_hosts, host_report_receipts to virtsync_tick_producer',
    'grant select, insert, update, delete on host_liveness to virtsync_tick_producer',
    'grant select, insert, update on host_liveness_transitions, pipeline_health to virtsync_tick_producer',
    'grant usage on sequence host_liveness_transitions_seq_seq to virtsync_tick_producer',
    'grant select on host_report_receipts, host_liveness, host_liveness_transitions, pipeline_health to virtsync_reader',
  ]) {
    await sql.raw(grant).execute(db);
  }
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['pipeline_health', 'host_liveness_transitions', 'host_liveness', 'host_report_receipts']) {
    await db.schema.dropTable(table).ifExists().execute();
  }
}
