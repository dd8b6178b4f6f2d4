/**
 * Migration numbers are handed out before changes merge: 0007 may run on a database before
 * 0005 and 0006 exist. Those must still apply when they arrive.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type Kysely, sql } from 'kysely';
import { MIGRATIONS, migrateToLatest } from '../../../../shared/db/migrate.ts';
import { createTestDatabase, type TestDatabase } from '../../../helpers/test-database.ts';
import { testLogger } from '../../../helpers/test-logger.ts';

let database: TestDatabase;

before(async () => {
  database = await createTestDatabase();
});

after(async () => {
  await database?.drop();
});

test('a lower-numbered migration that arrives after 0007 has run still applies', async () => {
  const executed = async (): Promise<string[]> =>
    (await sql<{ name: string }>`select name from kysely_migration order by name`.execute(database.db)).rows.map((row) => row.name);
  assert.ok((await executed()).includes('0007-outbox-claims'));

  const late = {
    async up(db: Kysely<any>) {
      await sql`create table late_arrival (id int)`.execute(db);
    },
  };
  await migrateToLatest(database.db, testLogger, { ...MIGRATIONS, '0005-late-arrival': late });
  assert.deepEqual(await executed(), [...Object.keys(MIGRATIONS), '0005-late-arrival'].sort());
  await sql`select id from late_arrival`.execute(database.db);
});
