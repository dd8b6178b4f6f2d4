import type { Kysely } from 'kysely';
import type { Database } from './database.ts';

/** The hosts to tick, in a stable order. */
export async function listEnabledHosts(db: Kysely<Database>): Promise<string[]> {
  const rows = await db.selectFrom('compute_hosts').select('host').where('enabled', '=', true).orderBy('host').execute();
  return rows.map((row) => row.host);
}
