// Frozen once merged: later changes go in a new, higher-numbered migration.
//
// An agent reads only its own host's instances. Each agent logs in as its own role (a member
// of virtsync_agent, created by `virtsync hosts add`), mapped to its host in agent_logins,
// which only operators write. Row-level security filters instances for virtsync_agent by
// that mapping, and instance_sync_state (0006, which agents read beside their rows) by the
// instances the agent can see; every role that is not an agent keeps seeing every row its
// grants allow. An agent login with no mapping sees nothing.
import { type Kysely, sql } from 'kysely';

const STATEMENTS = [
  `create table agent_logins (
     login name primary key,
     host text not null unique references compute_hosts (host)
   )`,
  // SECURITY DEFINER so agents need no privilege on agent_logins (the fleet's host list is not
  // theirs to read). Inside it current_user is the owner, so the caller's login is an argument.
  // Its search_path is pinned to the migration's (virtsync's schema, public or not), so a
  // caller's search_path cannot redirect it.
  `create function agent_host(login name) returns text
     language sql stable security definer set search_path from current
     as $$ select host from agent_logins where agent_logins.login = agent_host.login $$`,
  'revoke all on function agent_host(name) from public',
  'grant execute on function agent_host(name) to virtsync_agent',
  'alter table instances enable row level security',
  // The sub-select makes the host an InitPlan, looked up once per query rather than once per row
  // (a SECURITY DEFINER function is never inlined): calling it per row doubled a 100-row host's
  // read (bench:agent-database-reach, docs/security.md).
  'create policy instances_agent_own_host on instances for select to virtsync_agent using (host = (select agent_host(current_user)))',
  // Row security concerns agents only: any other role (the services', an operator's, one granted
  // directly) sees and changes rows as its grants allow. Looked up once per query (sub-select).
  "create policy instances_not_an_agent on instances using ((select not pg_has_role(current_user, 'virtsync_agent', 'member')))",
  // The sub-select runs under the agent's own policy on instances: its host's uuids only.
  'alter table instance_sync_state enable row level security',
  'create policy sync_state_agent_own_host on instance_sync_state for select to virtsync_agent using (uuid in (select uuid from instances))',
  "create policy sync_state_not_an_agent on instance_sync_state using ((select not pg_has_role(current_user, 'virtsync_agent', 'member')))",
];

export async function up(db: Kysely<any>): Promise<void> {
  for (const statement of STATEMENTS) await sql.raw(statement).execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const policy of ['sync_state_agent_own_host', 'sync_state_not_an_agent']) {
    await sql.raw(`drop policy if exists ${policy} on instance_sync_state`).execute(db);
  }
  await sql.raw('alter table instance_sync_state disable row level security').execute(db);
  for (const policy of ['instances_agent_own_host', 'instances_not_an_agent']) {
    await sql.raw(`drop policy if exists ${policy} on instances`).execute(db);
  }
  await sql.raw('alter table instances disable row level security').execute(db);
  await sql.raw('drop function if exists agent_host(name)').execute(db);
  await sql.raw('drop table if exists agent_logins').execute(db);
}
