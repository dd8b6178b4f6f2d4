import type { SelectQueryBuilder } from 'kysely';
import type { Database } from './database.ts';

/** How many rows a query would return: `countRows(db.selectFrom('audit_log'))`. */
export async function countRows<TB extends keyof Database>(query: SelectQueryBuilder<Database, TB, object>): Promise<number> {
  const row = await query.select((eb) => eb.fn.countAll<string>().as('count')).executeTakeFirstOrThrow();
  return Number(row.count);
}
