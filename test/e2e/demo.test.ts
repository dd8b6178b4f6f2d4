/**
 * The demo's fleet through all four services, each a separate process, on real
 * PostgreSQL, RabbitMQ and libvirt: every instance ends in its scenario's expected
 * state and the audit log holds exactly one row per committed change.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { DEFAULT_FLEET } from '../../tools/fleet/fleet-plan.ts';
import { DRIFT } from '../../tools/fleet/scenarios.ts';
import type { DemoSummary } from '../../tools/demo/demo-summary.ts';
import { runDemo } from '../../tools/demo/run-demo.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/test-database.ts';
import { createTestVhost, type TestVhost } from '../../tools/local-env/vhost.ts';

let database: TestDatabase;
let vhost: TestVhost;
let workDir: string;
let summary: DemoSummary;

before(async () => {
  database = await createTestDatabase();
  vhost = await createTestVhost();
  workDir = await mkdtemp(path.join(os.tmpdir(), 'virtsync-e2e-'));
  summary = await runDemo(database.db, {
    databaseUrl: database.url,
    amqpUrl: vhost.amqpUrl,
    fleet: { ...DEFAULT_FLEET, hosts: 6, minVmsPerHost: 20, maxVmsPerHost: 40, seed: 7, hostPrefix: `e2e-${vhost.name.slice(-8)}` },
    fleetDir: path.join(workDir, 'fleet'),
    logDir: workDir,
    cycleMs: 600,
    agents: 2,
    timeoutMs: 60_000,
    progress: () => undefined,
  });
});

after(async () => {
  await database?.drop();
  await vhost?.delete();
  if (workDir !== undefined) await rm(workDir, { recursive: true, force: true });
});

test('every instance ends in its expected state, row by row', () => {
  assert.deepEqual(summary.mismatches, []);
  assert.equal(summary.ok, true);
});

test('the writer decided every drift scenario, each rule as often as planned', () => {
  const rulesPlanned = new Set(DRIFT.map((scenario) => scenario.rule));
  assert.deepEqual(new Set(summary.rules.map((r) => r.rule)), rulesPlanned);
  for (const { rule, expected, found } of summary.rules) {
    assert.ok(expected > 0, `${rule} planned`);
    assert.equal(found, expected, `${rule}: decided ${found} times, planned ${expected}`);
  }
});

test('the audit log holds exactly one row per committed change', async () => {
  const outbox = await database.db.selectFrom('change_outbox').select(['event_id', 'published_at']).execute();
  const audit = await database.db.selectFrom('audit_log').select('event_id').execute();
  assert.ok(outbox.length > 0);
  assert.ok(outbox.every((row) => row.published_at !== null), 'every change published');
  assert.equal(audit.length, outbox.length);
  assert.deepEqual(new Set(audit.map((row) => row.event_id)), new Set(outbox.map((row) => row.event_id)));
  assert.equal(summary.eventsReceivedDownstream, outbox.length);
});

test('every service process stopped cleanly on SIGTERM', () => {
  assert.deepEqual(Object.values(summary.serviceExitCodes).filter((code) => code !== 0), []);
  assert.equal(Object.keys(summary.serviceExitCodes).length, 5);
});
