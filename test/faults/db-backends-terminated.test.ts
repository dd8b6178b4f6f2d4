/**
 * Fault: database backends terminated mid-batch (restarting the PostgreSQL server itself
 * is not done: it is shared by every other test on this machine). A real cycle's observations wait in
 * the writer's queue; the test holds a lock on every instance row, starts the writer
 * (batches of 10) and waits until pg_stat_activity shows it waiting on that lock inside
 * its batch transaction. Then `pg_terminate_backend` on every backend of the test
 * database (writer, audit subscriber, agents, the lock holder). Once the writer has
 * committed a batch again, the backends are terminated a second time while one of its
 * later batches is in a transaction. Expected: each interrupted batch rolls back and is
 * retried, nothing is lost or applied twice. A process that exits non-zero is restarted
 * (as systemd's Restart=on-failure would), so a crash is reported as a crash while the
 * run still shows whether anything was lost.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Queue } from '../../shared/bus/topology.ts';
import { waitFor } from '../../tools/wait-for.ts';
import { type FaultOutcome, type FaultRig, createFaultRig } from './harness/fault-rig.ts';
import { printFaultSummary } from './harness/fault-report.ts';
import { holdInstanceLocks, terminateBackends, waitForBackend, withApplicationName } from './harness/database-faults.ts';
import { defineInvariantTests } from './harness/invariant-tests.ts';

const WRITER_APP = 'virtsync-state-writer';

let rig: FaultRig;
let outcome: FaultOutcome;
const terminations: Array<{ terminated: number; writerState: string }> = [];

before(
  async () => {
    rig = await createFaultRig({ fault: 'db-backends-terminated', races: 'manual', restartOnCrash: true });
    await rig.runCycleWithoutWriter();
    await waitFor('the observations queued', async () => (await rig.probe.messageCount(Queue.stateWriter)) >= rig.observationMessagesPublished(), { timeoutMs: 30_000 });
    await rig.applyRaces();

    const locks = await holdInstanceLocks(rig, 'rows');
    rig.startWriter({ DATABASE_URL: withApplicationName(rig.database.url, WRITER_APP), WRITER_BATCH_SIZE: '10' });
    const blocked = await waitForBackend(rig, 'the writer blocked on a row lock inside its batch', (b) => b.application === WRITER_APP && b.waitEventType === 'Lock', 30_000);
    terminations.push({ terminated: await terminateBackends(rig), writerState: `${blocked.state}, waiting on a row lock in its transaction` });
    await locks.release();

    await waitFor('a batch committed after the first termination', () => rig.writerStats().batches >= 1, { timeoutMs: 30_000 });
    const busy = await waitForBackend(rig, 'the writer inside another batch transaction', (b) => b.application === WRITER_APP && b.inTransaction, 10_000, 2).catch(
      () => undefined,
    );
    terminations.push({ terminated: await terminateBackends(rig), writerState: busy === undefined ? 'not caught in a transaction' : `${busy.state} in a transaction` });

    const settled = await rig.settle(60_000);
    outcome = await rig.finish(settled);
    printFaultSummary('pg_terminate_backend on every backend of the test database, twice, while the writer is in a batch', outcome, [
      ...terminations.map((t, i) => `termination ${i + 1}: ${t.terminated} backends terminated; the writer was ${t.writerState}`),
    ]);
  },
  { timeout: 120_000 },
);

after(async () => {
  await rig?.dispose(outcome === undefined || outcome.invariants.violations.length > 0);
});


defineInvariantTests(() => outcome);

test('nothing dead-lettered, every observation decided, one change per drifted instance', () => {
  assert.ok((terminations[0]?.terminated ?? 0) >= 2, 'the first termination hit the writer and others');
  assert.equal(outcome.figures.deadlettered, 0);
  assert.ok(outcome.stats.writers.observations >= rig.observationsPublished());
  assert.equal(outcome.figures.committed, outcome.fleet.changesExpected);
});

test('the writer survives: its interrupted batch rolls back and is retried in-process', () => {
  assert.deepEqual(outcome.crashed, []);
  assert.ok(outcome.stats.writers.retries.length >= 1, 'the writer retried at least one batch');
});
