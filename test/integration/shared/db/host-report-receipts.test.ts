/**
 * Receipts of host reports on real PostgreSQL: failures count once per tick cycle however
 * often a report is redelivered or batched, a synced report resets the count unless it is
 * older than a failure counted, manual syncs do not count, and every time is the
 * database's clock of receipt, whatever the agent stamped.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, beforeEach, test } from 'node:test';
import { sql } from 'kysely';
import { recordReportReceipts } from '../../../../shared/db/host-report-receipts.ts';
import { SCHEMA_VERSION } from '../../../../shared/messages/fields.ts';
import type { HostReport } from '../../../../shared/messages/host-report.ts';
import { createTestDatabase, type TestDatabase } from '../../../helpers/test-database.ts';

let database: TestDatabase;
before(async () => {
  database = await createTestDatabase();
});
after(async () => {
  await database?.drop();
});
beforeEach(async () => {
  await database.db.deleteFrom('host_report_receipts').execute();
});

function report(cycle: number, outcome: HostReport['outcome'], trigger: HostReport['trigger'] = 'periodic'): HostReport {
  return {
    schemaVersion: SCHEMA_VERSION, host: 'h1', tickId: randomUUID(), cycle: trigger === 'manual' ? 0 : cycle, trigger,
    // A clock far ahead: receipt times must not care.
    startedAt: '3000-01-01T00:00:00.000Z',
    durationMs: 1, outcome, error: outcome === 'synced' ? null : 'libvirt down',
    dbCount: 0, hypervisorCount: 0, compared: 0, drifted: 0, missing: 0, unknown: 0, published: 0,
  };
}

async function receipt() {
  return database.db.selectFrom('host_report_receipts').selectAll().where('host', '=', 'h1').executeTakeFirstOrThrow();
}

test('failures count once per cycle, across batches and within one', async () => {
  await recordReportReceipts(database.db, [report(10, 'failed')]);
  await recordReportReceipts(database.db, [report(10, 'failed')]); // redelivered
  await recordReportReceipts(database.db, [report(11, 'skipped'), report(11, 'skipped'), report(12, 'failed')]);
  const row = await receipt();
  assert.equal(row.consecutive_failures, 3);
  assert.equal(row.last_outcome, 'failed');
  assert.equal(row.last_synced_at, null);
});

test('a synced report resets the count, one older than a counted failure does not', async () => {
  await recordReportReceipts(database.db, [report(10, 'failed'), report(11, 'failed')]);
  await recordReportReceipts(database.db, [report(9, 'synced')]); // late
  assert.equal((await receipt()).consecutive_failures, 2);
  await recordReportReceipts(database.db, [report(12, 'synced')]);
  const row = await receipt();
  assert.equal(row.consecutive_failures, 0);
  assert.notEqual(row.last_synced_at, null);
});

test('manual syncs do not count failures; a synced one resets', async () => {
  await recordReportReceipts(database.db, [report(10, 'failed')]);
  await recordReportReceipts(database.db, [report(0, 'failed', 'manual'), report(0, 'failed', 'manual')]);
  assert.equal((await receipt()).consecutive_failures, 1);
  await recordReportReceipts(database.db, [report(0, 'synced', 'manual')]);
  assert.equal((await receipt()).consecutive_failures, 0);
});

test('received at is the database clock, not the agent stamp', async () => {
  await recordReportReceipts(database.db, [report(10, 'synced')]);
  const { rows } = await sql<{ skewMs: number }>`
    select extract(epoch from (now() - last_received_at)) * 1000 as "skewMs" from host_report_receipts where host = 'h1'`.execute(database.db);
  const skewMs = Number(rows[0]?.skewMs);
  assert.ok(skewMs >= 0 && skewMs < 60_000, `received ${skewMs} ms ago`);
});
