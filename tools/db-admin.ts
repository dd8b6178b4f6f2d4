/** Creating and dropping whole databases, for the demo and the tests (never for a service). */
import pg from 'pg';

/** The same server and credentials, another database. */
export function databaseUrlFor(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

async function withMaintenanceClient<R>(url: string, fn: (client: pg.Client) => Promise<R>): Promise<R> {
  const client = new pg.Client({ connectionString: databaseUrlFor(url, 'postgres') });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

const quoteIdent = (name: string): string => `"${name.replaceAll('"', '""')}"`;

export async function recreateDatabase(url: string, database: string): Promise<string> {
  await withMaintenanceClient(url, async (client) => {
    await client.query(`drop database if exists ${quoteIdent(database)} with (force)`);
    await client.query(`create database ${quoteIdent(database)}`);
  });
  return databaseUrlFor(url, database);
}

export async function dropDatabase(url: string, database: string): Promise<void> {
  await withMaintenanceClient(url, (client) => client.query(`drop database if exists ${quoteIdent(database)} with (force)`));
}
