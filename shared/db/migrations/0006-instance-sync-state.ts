// Frozen once merged: later changes go in a new, higher-numbered migration.
//
// Look ordering instead of clocks, and virtsync's bookkeeping out of the cloud's table:
// - virtsync_agent_epoch hands each agent process an epoch; its looks are ordered by
//   (epoch, sequence within it), never by an agent's clock.
// - instance_sync_state keeps, per instance, the newest look decided on, what virtsync
//   last wrote (to tell its own writes from the cloud's) and the miss count. The cloud's
//   instances table needs only the columns a cloud has.
// - host_sync_reports keeps the newest report by look order, not by the agent's stamp.
// The old bookkeeping columns of instances (power_state_updated_at, missed_reports,
// last_missed_at) stay during the rolling upgrade, for writers of the previous release;
// a later migration drops them (docs/operations.md, "Upgrading").
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`create sequence virtsync_agent_epoch`.execute(db);
  await db.schema
    .createTable('instance_sync_state')
    .addColumn('uuid', 'uuid', (col) => col.primaryKey())
    .addColumn('look_host', 'text')
    .addColumn('look_epoch', 'bigint')
    .addColumn('look_seq', 'bigint')
    .addColumn('written_power_state', 'smallint')
    .addColumn('written_vm_state', 'text')
    .addColumn('missed_reports', 'smallint', (col) => col.notNull().defaultTo(0))
    // The agent's stamp of the newest look: shown to operators, never compared.
    .addColumn('observed_at', 'timestamptz')
    .addColumn('updated_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute();
  await sql`insert into instance_sync_state (uuid, missed_reports) select uuid, missed_reports from instances where missed_reports > 0`.execute(db);
  await db.schema.alterTable('host_sync_reports').addColumn('look_epoch', 'bigint').addColumn('look_seq', 'bigint').execute();

  await sql`grant usage on sequence virtsync_agent_epoch to virtsync_agent`.execute(db);
  await sql`grant select on instance_sync_state to virtsync_agent, virtsync_reader`.execute(db);
  await sql`grant select, insert, update on instance_sync_state to virtsync_writer`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('host_sync_reports').dropColumn('look_seq').dropColumn('look_epoch').execute();
  await db.schema.dropTable('instance_sync_state').execute();
  await sql`drop sequence virtsync_agent_epoch`.execute(db);
}
