/**
 * Fault: the writer killed with SIGKILL mid-batch, then a new writer started, twice.
 * A real cycle's observations wait in the writer's queue. Kill 1: the test holds a lock
 * on every instance row, starts writer 1 (batches of 8) and kills it once
 * pg_stat_activity shows it waiting on that lock inside its batch transaction. Kill 2:
 * writer 2 is killed the moment it logs its first committed batch (committed, its acks
 * and its outbox relay possibly still in flight). Writer 3 then runs to the end.
 * Expected: nothing lost, no change applied twice, one audit row per change even where
 * the relay republishes an event.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Queue } from '../../shared/bus/topology.ts';
import { waitFor } from '../../tools/wait-for.ts';
import { holdInstanceLocks, waitForBackend, withApplicationName } from './harness/database-faults.ts';
import { type FaultOutcome, type FaultRig, createFaultRig, type RigProcess } from './harness/fault-rig.ts';
import { printFaultSummary } from './harness/fault-report.ts';
import { defineInvariantTests } from './harness/invariant-tests.ts';

const WRITER_APP = 'virtsync-state-writer';

let rig: FaultRig;
let outcome: FaultOutcome;
const killed: Array<{ name: string; moment: string; batchesBefore: number }> = [];

before(
  async () => {
    rig = await createFaultRig({ fault: 'writer-kill9', races: 'manual' });
    await rig.runCycleWithoutWriter();
    await waitFor('the observations queued', async () => (await rig.probe.messageCount(Queue.stateWriter)) >= rig.observationMessagesPublished(), { timeoutMs: 30_000 });
    await rig.applyRaces();
    const env = { DATABASE_URL: withApplicationName(rig.database.url, WRITER_APP), WRITER_BATCH_SIZE: '8' };

    // Kill 1: inside the batch transaction, blocked on a row lock.
    const locks = await holdInstanceLocks(rig, 'rows');
    const first = rig.startWriter(env);
    await waitForBackend(rig, 'writer 1 blocked on a row lock inside its batch', (b) => b.application === WRITER_APP && b.waitEventType === 'Lock', 30_000);
    await rig.kill(first);
    killed.push({ name: first.name, moment: 'inside its first batch transaction, waiting on a row lock', batchesBefore: first.stats.batches });
    await locks.release();

    // Kill 2: the instant its first batch is committed.
    let second: RigProcess | undefined;
    const killedSecond = new Promise<void>((resolve) => {
      second = rig.startWriter(env, (entry, process) => {
        if (entry.msg !== 'batch committed' || process.killed) return;
        void rig.kill(process).then(resolve);
      });
    });
    await Promise.race([killedSecond, second?.process.exited]);
    if (second !== undefined) killed.push({ name: second.name, moment: 'right after logging its first committed batch', batchesBefore: second.stats.batches });

    rig.startWriter(env);
    const settled = await rig.settle(60_000);
    outcome = await rig.finish(settled);
    printFaultSummary('state-writer kill -9 mid-batch, restarted; twice', outcome, [
      ...killed.map((k) => `${k.name} killed ${k.moment} (batches committed before: ${k.batchesBefore})`),
      `a third writer caught up: ${outcome.stats.writers.observations} decisions in total by all writers`,
    ]);
  },
  { timeout: 120_000 },
);

after(async () => {
  await rig?.dispose(outcome === undefined || outcome.invariants.violations.length > 0);
});

defineInvariantTests(() => outcome);

test('both kills happened at their moment and the last writer caught up', () => {
  assert.equal(killed.length, 2);
  assert.equal(killed[0]?.batchesBefore, 0);
  // Killed on its first commit's log line; the other batch in flight (WRITER_MAX_IN_FLIGHT, 2) may commit before the signal lands.
  const second = killed[1]?.batchesBefore ?? 0;
  assert.ok(second >= 1 && second <= 2, `writer 2 committed ${second} batches before its kill`);
  const survivors = rig.processes.filter((p) => p.service === 'state-writer' && !p.killed);
  assert.equal(survivors.length, 1);
  assert.equal(survivors[0]?.exit?.code, 0);
  assert.ok(outcome.stats.writers.observations >= rig.observationsPublished());
  assert.equal(outcome.figures.committed, outcome.fleet.changesExpected);
  assert.equal(outcome.figures.deadlettered, 0);
});
