/**
 * Fault: the writer is told to stop while a batch is in flight. A real cycle's
 * observations wait in the writer's queue; each writer below is started while the test
 * holds a lock on every instance row, so its first batch is stuck inside its
 * transaction when the signal comes.
 *  - writer 1, SIGTERM: it stops taking messages, and once the lock is released it
 *    commits what it holds (the stuck batch and the rest of its prefetch), acks it,
 *    flushes its outbox and exits 0;
 *  - writer 2, SIGTERM then a second SIGTERM: exits at once (130), its batch rolled back;
 *  - writer 3, SIGTERM with SHUTDOWN_TIMEOUT_MS=1500 and the lock still held: exits
 *    non-zero at the deadline, its batch rolled back;
 *  - writer 4 then runs to the end.
 * Expected: nothing lost, nothing applied twice, one audit row per change.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Queue } from '../../shared/bus/topology.ts';
import { countUnpublished } from '../../shared/db/change-outbox.ts';
import { waitFor } from '../../tools/wait-for.ts';
import { holdInstanceLocks, waitForBackend, withApplicationName } from './harness/database-faults.ts';
import { type FaultOutcome, type FaultRig, createFaultRig, type RigProcess } from './harness/fault-rig.ts';
import { printFaultSummary } from './harness/fault-report.ts';
import { defineInvariantTests } from './harness/invariant-tests.ts';

/** The writer's batch transactions in flight (the default), so its prefetch holds this + 1 messages of one observation host each. */
const IN_FLIGHT = 2;

const WRITER_APP = 'virtsync-state-writer';

let rig: FaultRig;
let outcome: FaultOutcome;
const stops: Array<{ name: string; how: string; code: number | null; batches: number; observations: number; unpublishedAfter: number }> = [];

before(
  async () => {
    rig = await createFaultRig({ fault: 'graceful-shutdown', races: 'manual' });
    await rig.runCycleWithoutWriter();
    await waitFor('the observations queued', async () => (await rig.probe.messageCount(Queue.stateWriter)) >= rig.observationMessagesPublished(), { timeoutMs: 30_000 });
    await rig.applyRaces();
    // One message a batch, two batches in flight, three messages in hand (the prefetch, (WRITER_MAX_IN_FLIGHT + 1) × batch):
    // every writer below finds messages left to take.
    const env = { DATABASE_URL: withApplicationName(rig.database.url, WRITER_APP), WRITER_BATCH_SIZE: '1', WRITER_MAX_IN_FLIGHT: String(IN_FLIGHT) };

    /** A writer whose first batch is stuck on the test's row locks, and a way to know it began shutting down. */
    const stuckWriter = async (extraEnv: Record<string, string> = {}) => {
      const locks = await holdInstanceLocks(rig, 'rows');
      let shuttingDown = false;
      const writer: RigProcess = rig.startWriter({ ...env, ...extraEnv }, (entry) => {
        if (entry.msg === 'shutting down') shuttingDown = true;
      });
      await waitForBackend(rig, `${writer.name} blocked inside its batch`, (b) => b.application === WRITER_APP && b.waitEventType === 'Lock', 30_000);
      return { writer, locks, shuttingDown: () => shuttingDown };
    };
    const record = async (writer: RigProcess, how: string, code: number | null): Promise<void> => {
      stops.push({ name: writer.name, how, code, batches: writer.stats.batches, observations: writer.stats.observations, unpublishedAfter: await countUnpublished(rig.database.db) });
    };

    // 1: SIGTERM, then the lock goes: the batch in hand is committed before the exit.
    const first = await stuckWriter();
    const firstExit = first.writer.stop();
    await waitFor('writer 1 shutting down', first.shuttingDown, { timeoutMs: 10_000 });
    await first.locks.release();
    await record(first.writer, 'SIGTERM mid-batch, lock released after', await firstExit);

    // 2: a second signal exits at once.
    const second = await stuckWriter();
    second.writer.killed = true;
    const secondExit = second.writer.process.kill('SIGTERM');
    await waitFor('writer 2 shutting down', second.shuttingDown, { timeoutMs: 10_000 });
    void second.writer.process.kill('SIGTERM');
    await record(second.writer, 'SIGTERM, then SIGTERM again, lock held', await secondExit);
    await second.locks.release();

    // 3: the shutdown deadline passes while the batch is still stuck.
    const third = await stuckWriter({ SHUTDOWN_TIMEOUT_MS: '1500' });
    await record(third.writer, 'SIGTERM with SHUTDOWN_TIMEOUT_MS=1500, lock held throughout', await rig.kill(third.writer, 'SIGTERM').then(() => third.writer.process.exited));
    await third.locks.release();

    rig.startWriter(env);
    const settled = await rig.settle(60_000);
    outcome = await rig.finish(settled);
    printFaultSummary('state-writer stopped while a batch is in flight: SIGTERM, a second SIGTERM, the shutdown deadline', outcome, [
      ...stops.map((s) => `${s.name}: ${s.how}: exit ${s.code ?? 'signal'}, batches committed ${s.batches} (${s.observations} observations), outbox rows unpublished after its exit ${s.unpublishedAfter}`),
    ]);
  },
  { timeout: 120_000 },
);

after(async () => {
  await rig?.dispose(outcome === undefined || outcome.invariants.violations.length > 0);
});

defineInvariantTests(() => outcome);

test('SIGTERM: what it had in hand is committed, the outbox flushed, exit 0', () => {
  const first = stops[0];
  assert.equal(first?.code, 0);
  assert.ok((first?.batches ?? 0) >= 1, 'the batch in flight at the signal was committed');
  // Its prefetch ((WRITER_MAX_IN_FLIGHT + 1) × batch size: that many messages, a host each) bounds what it held: nothing new was taken after the signal.
  const inHand = IN_FLIGHT + 1;
  const largestHosts = rig.recorder.reports
    .map((report) => report.published)
    .sort((a, b) => b - a)
    .slice(0, inHand)
    .reduce((sum, published) => sum + published, 0);
  assert.ok((first?.observations ?? 0) <= largestHosts, `decided ${first?.observations} observations, at most ${largestHosts} in ${inHand} messages`);
  assert.equal(first?.unpublishedAfter, 0, 'the outbox was flushed before the exit');
});

test('a second signal exits at once, the shutdown deadline exits non-zero; their batches are redone by the next writer', () => {
  assert.equal(stops[1]?.code, 130);
  assert.equal(stops[1]?.batches, 0);
  assert.equal(stops[2]?.code, 1);
  assert.equal(stops[2]?.batches, 0);
  assert.equal(outcome.figures.committed, outcome.fleet.changesExpected);
  assert.equal(outcome.figures.deadlettered, 0);
});
