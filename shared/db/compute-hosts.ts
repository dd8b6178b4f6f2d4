import type { Kysely } from 'kysely';
import type { Database } from './database.ts';

/** The hosts to tick, in a stable order. */
export async function listEnabledHosts(db: Kysely<Database>): Promise<string[]> {
  const rows = await db.selectFrom('compute_hosts').select('host').where('enabled', '=', true).orderBy('host').execute();
  return rows.map((row) => row.host);
}

/**
 * Turns the periodic sync of some hosts on or off. Returns the hosts that have a row (and
 * were set); the caller reports the others.
 */
export async function setHostsEnabled(db: Kysely<Database>, hosts: readonly string[], enabled: boolean): Promise<string[]> {
  if (hosts.length === 0) return [];
  const rows = await db.updateTable('compute_hosts').set({ enabled }).where('host', 'in', hosts).returning('host').execute();
  return rows.map((row) => row.host).sort();
}
