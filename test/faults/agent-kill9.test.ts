/**
 * Fault: a sync agent killed with SIGKILL mid-tick, restarted, twice. Two agents share
 * the hosts; the tick producer runs three 1 s cycles. Kill 1: the test holds an ACCESS
 * EXCLUSIVE lock on `instances` before the first tick, so agent 1 is stopped inside its
 * host sync (tick taken, rows being read); it is killed once pg_stat_activity shows it
 * waiting there. Kill 2: the restarted agent 1 is killed the moment it logs its first
 * synced host, while its other host syncs are still publishing. A third agent 1 then
 * takes the ticks left unacked, and a manual tick per host of agent 1 checks it is
 * healthy. Expected: every host caught up, nothing lost, no duplicate change.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { waitFor } from '../../tools/wait-for.ts';
import { holdInstanceLocks, waitForBackend, withApplicationName } from './harness/database-faults.ts';
import { type FaultOutcome, type FaultRig, createFaultRig, type RigProcess, SERVICE_START_TIMEOUT_MS } from './harness/fault-rig.ts';
import { printFaultSummary } from './harness/fault-report.ts';
import { defineInvariantTests } from './harness/invariant-tests.ts';

const AGENT_APP = 'virtsync-sync-agent-1';

let rig: FaultRig;
let outcome: FaultOutcome;
const killed: Array<{ name: string; moment: string }> = [];
let checkTicks: string[] = [];

before(
  async () => {
    rig = await createFaultRig({ fault: 'agent-kill9' });
    const env = { DATABASE_URL: withApplicationName(rig.database.url, AGENT_APP) };
    rig.startAuditSubscriber();
    rig.startWriter();
    const first = rig.startAgent(0, env);
    rig.startAgent(1);

    // Kill 1: inside a host sync, blocked reading the host's rows.
    const locks = await holdInstanceLocks(rig, 'table');
    rig.startTickProducer({ intervalMs: 1_000, cycles: 3 });
    await waitForBackend(rig, 'agent 1 inside a host sync', (b) => b.application === AGENT_APP && b.waitEventType === 'Lock', SERVICE_START_TIMEOUT_MS);
    await rig.kill(first);
    killed.push({ name: first.name, moment: 'inside a host sync, reading its rows' });
    await locks.release();

    // Kill 2: the instant the restarted agent has synced its first host.
    let second: RigProcess | undefined;
    const killedSecond = new Promise<void>((resolve) => {
      second = rig.startAgent(0, env, (entry, process) => {
        if (entry.msg !== 'host synced' || process.killed) return;
        void rig.kill(process).then(resolve);
      });
    });
    await Promise.race([killedSecond, second?.process.exited]);
    if (second !== undefined) killed.push({ name: second.name, moment: `right after logging its first synced host (${second.stats.hostsSynced} synced)` });

    rig.startAgent(0, env);
    await waitFor('the tick producer done', () => rig.processes.every((p) => p.service !== 'tick-producer' || p.exit !== undefined), { timeoutMs: 30_000 });
    checkTicks = await rig.publishManualTicks(rig.agentHosts[0] ?? []);
    const settled = await rig.settle(60_000);
    outcome = await rig.finish(settled);
    printFaultSummary('sync-agent kill -9 mid-tick, restarted; twice', outcome, [
      ...killed.map((k) => `${k.name} killed ${k.moment}`),
      `observations routed by the broker ${rig.recorder.observations.length} (reports count ${rig.observationsPublished()}: a killed sync publishes no report)`,
      `manual ticks to the ${checkTicks.length} hosts of agent 1 after its last restart: ${rig.recorder.reports.filter((r) => r.tickId !== null && checkTicks.includes(r.tickId) && r.outcome === 'synced').length} synced`,
    ]);
  },
  { timeout: 120_000 },
);

after(async () => {
  await rig?.dispose(outcome === undefined || outcome.invariants.violations.length > 0);
});

defineInvariantTests(() => outcome);

test('both kills happened mid-tick and the restarted agent synced every one of its hosts', () => {
  assert.equal(killed.length, 2);
  const reports = rig.recorder.reports.filter((r) => r.tickId !== null && checkTicks.includes(r.tickId));
  assert.deepEqual(
    reports.filter((r) => r.outcome === 'synced').map((r) => r.host).sort(),
    [...(rig.agentHosts[0] ?? [])].sort(),
  );
  const survivors = rig.processes.filter((p) => p.service === 'sync-agent' && !p.killed);
  assert.equal(survivors.length, 2);
  assert.equal(outcome.figures.committed, outcome.fleet.changesExpected);
  assert.equal(outcome.figures.deadlettered, 0);
});
