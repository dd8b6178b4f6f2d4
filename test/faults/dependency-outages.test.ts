/**
 * Faults where the database refuses a consumer for a while, on a PostgreSQL cluster of
 * the test's own (the machine's cluster is shared and never stopped or re-granted):
 *  - audit-flap-postgres-down: the reproduction of issue 13. A cycle runs without the
 *    audit subscriber until every committed change event waits in its queue; PostgreSQL
 *    is stopped (-m fast); six times the audit subscriber is started, left 3 s to take
 *    deliveries and fail to write them, and stopped with SIGTERM (it hands its batch
 *    back); then PostgreSQL and the subscriber start. A broker that counted each return
 *    towards a delivery limit would have dead-lettered every change.
 *  - writer-privilege-revoked: the writer and the audit subscriber log in as roles of
 *    their own; mid-cycle, at the first host report, every privilege of both on the
 *    test database's tables is revoked, and granted back 3 s later (a missing GRANT
 *    after a migration, a role rotated by mistake). Their errors (SQLSTATE 42501) say
 *    nothing about the messages.
 * Expected of both: no valid message dead-lettered, every change committed once and
 * audited once, lost = 0, no process needing a hand.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { Queue } from '../../shared/bus/topology.ts';
import { countUnpublished } from '../../shared/db/change-outbox.ts';
import { waitFor } from '../../tools/wait-for.ts';
import { createPostgresCluster } from '../../tools/local-env/engines/postgres-cluster.ts';
import { type FaultOutcome, type FaultRig, createFaultRig, SERVICE_START_TIMEOUT_MS } from './harness/fault-rig.ts';
import { printFaultSummary } from './harness/fault-report.ts';
import { isUpdateRule } from './harness/fleet-invariants.ts';
import { defineInvariantTests } from './harness/invariant-tests.ts';
import { useOwnEngine } from './harness/own-engine.ts';

const FLAPS = 6;
const AWAY_MS = 3_000;

const theCluster = useOwnEngine('the PostgreSQL cluster', () => createPostgresCluster(), { startTimeoutMs: 120_000 });

/** Runs `statements` as the cluster's superuser in the rig's database. */
async function asSuperuser(rig: FaultRig, statements: readonly string[]): Promise<void> {
  const client = new pg.Client({ connectionString: rig.database.url });
  await client.connect();
  try {
    for (const statement of statements) await client.query(statement);
  } finally {
    await client.end();
  }
}

const withUser = (databaseUrl: string, user: string): string => {
  const url = new URL(databaseUrl);
  url.username = user;
  return url.toString();
};

describe('audit-flap-postgres-down', () => {
  let rig: FaultRig | undefined;
  let outcome: FaultOutcome | undefined;
  const flaps: Array<{ exit: number | null; batchesRetried: number }> = [];
  let waitingInQueue = 0;

  before(
    async () => {
      rig = await createFaultRig({ fault: 'audit-flap-postgres-down', engines: { databaseServerUrl: theCluster().serverUrl } });
      const r = rig;
      r.startWriter();
      r.agentHosts.forEach((_, index) => r.startAgent(index));
      r.startTickProducer({ intervalMs: 1_000, cycles: 1 });
      const expected = r.plan.instances.filter((i) => isUpdateRule(i.scenario.rule)).length;
      await waitFor(
        'every change committed, published and waiting in the audit queue',
        async () => (await r.count('change_outbox')) >= expected && (await countUnpublished(r.database.db)) === 0 && (await r.probe.messageCount(Queue.auditSubscriber)) >= expected,
        { timeoutMs: 120_000, intervalMs: 200 },
      );
      waitingInQueue = await r.probe.messageCount(Queue.auditSubscriber);

      await theCluster().stop('fast');
      for (let i = 0; i < FLAPS; i++) {
        const subscriber = r.startAuditSubscriber();
        await waitFor('the audit subscriber connected to the broker', () => subscriber.stats.brokerConnects >= 1, { timeoutMs: SERVICE_START_TIMEOUT_MS });
        await sleep(AWAY_MS);
        flaps.push({ exit: await subscriber.stop(), batchesRetried: subscriber.stats.retries.length });
      }
      await theCluster().start();
      r.startAuditSubscriber();
      const settled = await r.settle(90_000);
      outcome = await r.finish(settled);
      printFaultSummary('audit subscriber started and stopped (SIGTERM) six times while PostgreSQL is down, change events waiting', outcome, [
        `${waitingInQueue} change events waited in ${Queue.auditSubscriber} when PostgreSQL stopped`,
        `flaps: ${flaps.map((f, i) => `#${i + 1} exit ${f.exit} after ${f.batchesRetried} retries`).join(', ')}`,
      ]);
    },
    { timeout: 300_000 },
  );
  after(async () => {
    await rig?.dispose(outcome === undefined || outcome.invariants.violations.length > 0);
  });

  defineInvariantTests(() => {
    if (outcome === undefined) throw new Error('audit-flap-postgres-down did not run');
    return outcome;
  });

  test('every flap ended with exit 0, and no change event was dead-lettered', () => {
    assert.equal(flaps.length, FLAPS);
    assert.deepEqual(flaps.map((f) => f.exit), Array(FLAPS).fill(0));
    assert.ok(waitingInQueue > 0);
    assert.equal(outcome?.figures.deadlettered, 0);
    assert.equal(outcome?.invariants.auditRows, outcome?.figures.committed);
  });
});

describe('writer-privilege-revoked', () => {
  let rig: FaultRig | undefined;
  let outcome: FaultOutcome | undefined;
  const revoked: { reportsBefore: number; batchesBefore: number } = { reportsBefore: 0, batchesBefore: 0 };

  before(
    async () => {
      rig = await createFaultRig({ fault: 'writer-privilege-revoked', engines: { databaseServerUrl: theCluster().serverUrl } });
      const r = rig;
      const roles = [`w_${r.databaseName}`, `a_${r.databaseName}`] as const;
      const grants = roles.flatMap((role) => [
        `grant all on all tables in schema public to "${role}"`,
        `grant all on all sequences in schema public to "${role}"`,
      ]);
      await asSuperuser(r, [...roles.map((role) => `create role "${role}" login`), ...roles.map((role) => `grant connect on database "${r.databaseName}" to "${role}"`), ...grants]);
      r.startAuditSubscriber({ DATABASE_URL: withUser(r.database.url, roles[1]) });
      r.startWriter({ DATABASE_URL: withUser(r.database.url, roles[0]) });
      r.agentHosts.forEach((_, index) => r.startAgent(index));
      const producer = r.startTickProducer({ intervalMs: 1_000, cycles: 0 });
      await waitFor('the first host report', () => r.recorder.reports.length >= 1, { timeoutMs: SERVICE_START_TIMEOUT_MS });

      revoked.reportsBefore = r.recorder.reports.length;
      revoked.batchesBefore = r.writerStats().batches;
      await asSuperuser(r, roles.flatMap((role) => [`revoke all on all tables in schema public from "${role}"`, `revoke all on all sequences in schema public from "${role}"`]));
      await sleep(AWAY_MS);
      await asSuperuser(r, grants);
      const reportsAtGrant = r.recorder.reports.length;
      await waitFor(
        'every host synced after the grants',
        () => new Set(r.recorder.reports.slice(reportsAtGrant).filter((report) => report.outcome === 'synced').map((report) => report.host)).size >= r.plan.hosts.length,
        { timeoutMs: 120_000, intervalMs: 100 },
      );
      await producer.stop();
      const settled = await r.settle(90_000);
      outcome = await r.finish(settled);
      printFaultSummary('the writer\'s and the audit subscriber\'s privileges revoked mid-cycle, granted back 3 s later', outcome, [
        `revoked after ${revoked.reportsBefore} host reports and ${revoked.batchesBefore} committed batches`,
      ]);
    },
    { timeout: 300_000 },
  );
  after(async () => {
    await rig?.dispose(outcome === undefined || outcome.invariants.violations.length > 0);
  });

  defineInvariantTests(() => {
    if (outcome === undefined) throw new Error('writer-privilege-revoked did not run');
    return outcome;
  });

  test('nothing dead-lettered, one change per drifted instance', () => {
    assert.equal(outcome?.figures.deadlettered, 0);
    assert.equal(outcome?.figures.committed, outcome?.fleet.changesExpected);
  });
});
