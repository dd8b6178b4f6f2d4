// Frozen once merged: later changes go in a new, higher-numbered migration.
//
// The writer applies the operator's policy for unreachable hosts (UNREACHABLE_HOST_POLICY=nostate,
// issue 12): it reads which hosts the tick producer's leader judged unreachable, and since when,
// and whether the report path is silent. Reading only: the leader keeps both tables.
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`grant select on host_liveness, pipeline_health to virtsync_writer`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`revoke select on host_liveness, pipeline_health from virtsync_writer`.execute(db);
}
