/**
 * A host's identity in the database: the login `agent:<host>` (a member of virtsync_agent,
 * no password: it logs in with the host's client certificate, CN mapped by pg_ident), and
 * its row in agent_logins, which row-level security reads to show it its own host's
 * instances only. Run with the operator's DATABASE_URL (a role that may create roles).
 */
import { type Kysely, sql } from 'kysely';
import type { Database } from '../../shared/db/database.ts';

/** PostgreSQL truncates identifiers past 63 bytes: a longer login would not be the one pg_ident maps to. */
const MAX_IDENTIFIER_BYTES = 63;

export function agentLogin(host: string): string {
  const login = `agent:${host}`;
  if (Buffer.byteLength(login) > MAX_IDENTIFIER_BYTES) {
    throw new Error(`host name ${host} is too long for a database login (agent:<host> must fit in ${MAX_IDENTIFIER_BYTES} bytes)`);
  }
  return login;
}

export async function grantHostDatabaseLogin(db: Kysely<Database>, host: string): Promise<string> {
  const login = agentLogin(host);
  await db.transaction().execute(async (trx) => {
    await trx.insertInto('compute_hosts').values({ host }).onConflict((oc) => oc.column('host').doUpdateSet({ enabled: true })).execute();
    const existing = await sql<{ rolname: string }>`select rolname from pg_roles where rolname = ${login}`.execute(trx);
    if (existing.rows.length === 0) await sql`create role ${sql.id(login)} login`.execute(trx);
    await sql`grant virtsync_agent to ${sql.id(login)}`.execute(trx);
    await trx.insertInto('agent_logins').values({ login, host }).onConflict((oc) => oc.column('login').doUpdateSet({ host })).execute();
  });
  return login;
}

/** The login is dropped and the host disabled (its instances and history stay). */
export async function revokeHostDatabaseLogin(db: Kysely<Database>, host: string): Promise<void> {
  const login = agentLogin(host);
  await db.transaction().execute(async (trx) => {
    await trx.deleteFrom('agent_logins').where('host', '=', host).execute();
    await sql`drop role if exists ${sql.id(login)}`.execute(trx);
    await trx.updateTable('compute_hosts').set({ enabled: false }).where('host', '=', host).execute();
  });
}
