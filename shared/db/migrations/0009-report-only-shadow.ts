// Frozen once merged: later changes go in a new, higher-numbered migration.
//
// Report-only writer mode (WRITER_MODE=report-only, issue 17 §4): the writer decides as usual
// but writes nothing to instances. What it would have written is kept here instead, per
// instance, so miss counts build up and a drift is proposed once, not every cycle:
// - shadow_power_state / shadow_vm_state: the row as the writer would have left it;
// - missed_reports, look_*: the bookkeeping instance_sync_state keeps in write mode;
// - base_*: the cloud's row as it was when the entry was made. When the cloud changes any of
//   those columns since, the entry no longer applies and the writer decides on the real row.
// No foreign key to instances: instances may be a view onto the cloud's own table
// (docs/integration.md). change_outbox.message_type tells the relay what a row holds (change
// events and proposals share the outbox); rows of older writers are change events.
import { type Kysely, sql } from 'kysely';

const STATEMENTS = [
  `create table instance_sync_shadow (
     uuid uuid primary key,
     base_host text not null,
     base_power_state smallint not null,
     base_vm_state text not null,
     base_task_state text,
     base_deleted boolean not null,
     shadow_power_state smallint not null,
     shadow_vm_state text not null,
     missed_reports smallint not null default 0,
     look_host text,
     look_epoch bigint,
     look_seq bigint,
     updated_at timestamptz not null default now()
   )`,
  "alter table change_outbox add column message_type text not null default 'instance-change'",
  // Only the writer keeps the shadow (and clears it when it starts writing); agents read it beside their rows.
  'grant select, insert, update, delete on instance_sync_shadow to virtsync_writer',
  'grant select on instance_sync_shadow to virtsync_agent, virtsync_reader',
  // As instance_sync_state (0008): an agent sees the entries of the instances it can see.
  'alter table instance_sync_shadow enable row level security',
  'create policy sync_shadow_agent_own_host on instance_sync_shadow for select to virtsync_agent using (uuid in (select uuid from instances))',
  "create policy sync_shadow_not_an_agent on instance_sync_shadow using ((select not pg_has_role(current_user, 'virtsync_agent', 'member')))",
];

export async function up(db: Kysely<any>): Promise<void> {
  for (const statement of STATEMENTS) await sql.raw(statement).execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table change_outbox drop column message_type`.execute(db);
  await sql`drop table instance_sync_shadow`.execute(db);
}
