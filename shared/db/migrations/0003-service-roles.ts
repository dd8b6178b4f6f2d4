// Frozen once merged: later changes go in a new, higher-numbered migration.
//
// One NOLOGIN group role per service, holding only what that service needs. Operators
// create login users and grant them the role (see docs/operations.md). Roles are
// cluster-wide, so creating one that exists (another database, a concurrent
// migration) is not an error; the grants are per database.
import { type Kysely, sql } from 'kysely';

const ROLES = ['virtsync_tick_producer', 'virtsync_agent', 'virtsync_writer', 'virtsync_audit', 'virtsync_reader'];

const GRANTS = [
  // The producer lists the hosts to tick.
  'grant select on compute_hosts to virtsync_tick_producer',
  // Agents only read rows; they never write anything.
  'grant select on instances to virtsync_agent',
  // The writer is the only service that changes instances, and it owns the outbox.
  'grant select, update on instances to virtsync_writer',
  'grant select, insert, update on change_outbox to virtsync_writer',
  'grant usage on sequence change_outbox_seq_seq to virtsync_writer',
  // The audit subscriber appends to its trail (event_id is read back to count duplicates)
  // and keeps the newest report per host.
  'grant insert on audit_log to virtsync_audit',
  'grant select (event_id) on audit_log to virtsync_audit',
  'grant select, insert, update on host_sync_reports to virtsync_audit',
  // Operators' tools (CLI status, history) read everything and change nothing.
  'grant select on compute_hosts, instances, change_outbox, audit_log, host_sync_reports to virtsync_reader',
];

export async function up(db: Kysely<any>): Promise<void> {
  for (const role of ROLES) {
    await sql
      .raw(`do $$ begin create role ${role} nologin; exception when duplicate_object or unique_violation then null; end $$`)
      .execute(db);
  }
  for (const grant of GRANTS) await sql.raw(grant).execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const role of ROLES) {
    await sql.raw(`revoke all on all tables in schema public from ${role}`).execute(db);
    await sql.raw(`revoke all on all sequences in schema public from ${role}`).execute(db);
  }
}
