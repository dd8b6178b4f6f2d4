/**
 * Fault: one hypervisor is sick. The node file behind one host's libvirt connection is
 * missing from the start, so every sync of that host fails; after three failures the
 * host's circuit breaker opens and its ticks are reported `skipped` with the reason,
 * while the agent serving it goes on syncing its other hosts. The file then comes back;
 * once the breaker lets a test call through (BREAKER_RESET_MS, 2 s here) the host syncs
 * and its drift is committed. Expected: the other hosts unaffected, the sick host caught
 * up after recovery, nothing lost.
 */
import assert from 'node:assert/strict';
import { rename } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import type { HostReport } from '../../shared/messages/host-report.ts';
import { nodeXmlPath } from '../../tools/fleet/write-fleet.ts';
import { verifyFleet } from '../../tools/fleet/verify-fleet.ts';
import { waitFor } from '../../tools/wait-for.ts';
import { type FaultOutcome, type FaultRig, createFaultRig } from './harness/fault-rig.ts';
import { printFaultSummary } from './harness/fault-report.ts';
import { isUpdateRule } from './harness/fleet-invariants.ts';
import { defineInvariantTests } from './harness/invariant-tests.ts';

let rig: FaultRig;
let outcome: FaultOutcome;
let sickHost: string;
let whileSick: { otherHostsBehind: number; sickHostBehind: number; reportsOfNeighbours: number } | undefined;
const reportsOf = (host: string, outcomeName?: HostReport['outcome']): HostReport[] =>
  rig.recorder.reports.filter((r) => r.host === host && (outcomeName === undefined || r.outcome === outcomeName));

before(
  async () => {
    rig = await createFaultRig({ fault: 'sick-hypervisor' });
    // The host of agent 1 with the most drift, so being behind shows.
    const changesOn = (host: string): number =>
      rig.plan.instances.filter((i) => i.host === host && isUpdateRule(i.scenario.rule)).length;
    sickHost = [...(rig.agentHosts[0] ?? [])].sort((a, b) => changesOn(b) - changesOn(a))[0] as string;
    const file = nodeXmlPath(rig.fleetDir, sickHost);
    await rename(file, `${file}.away`);

    rig.startAuditSubscriber();
    rig.startWriter();
    rig.agentHosts.forEach((_, index) => rig.startAgent(index));
    const producer = rig.startTickProducer({ intervalMs: 500, cycles: 0 });
    await waitFor('the sick host reported skipped (breaker open)', () => reportsOf(sickHost, 'skipped').length >= 1, { timeoutMs: 60_000 });
    // Every other host synced and committed meanwhile.
    await waitFor('the other hosts in their expected state', async () => {
      const behind = await verifyFleet(rig.database.db, rig.plan);
      return behind.every((m) => rig.plan.instances.find((i) => i.uuid === m.uuid)?.host === sickHost);
    }, { timeoutMs: 30_000 });
    const behind = await verifyFleet(rig.database.db, rig.plan);
    const neighbours = (rig.agentHosts[0] ?? []).filter((host) => host !== sickHost);
    whileSick = {
      otherHostsBehind: behind.filter((m) => rig.plan.instances.find((i) => i.uuid === m.uuid)?.host !== sickHost).length,
      sickHostBehind: behind.length,
      reportsOfNeighbours: neighbours.reduce((n, host) => n + reportsOf(host, 'synced').length, 0),
    };

    await rename(`${file}.away`, file);
    const recoveredFrom = rig.recorder.reports.length;
    await waitFor('the sick host synced again', () => rig.recorder.reports.slice(recoveredFrom).some((r) => r.host === sickHost && r.outcome === 'synced'), {
      timeoutMs: 30_000,
    });
    await producer.stop();
    const settled = await rig.settle(60_000);
    outcome = await rig.finish(settled);
    const firstSkip = reportsOf(sickHost, 'skipped')[0];
    printFaultSummary(`the libvirt of host ${sickHost} fails until its node file comes back`, outcome, [
      `sick host: ${reportsOf(sickHost, 'failed').length} failed, ${reportsOf(sickHost, 'skipped').length} skipped, ${reportsOf(sickHost, 'synced').length} synced reports; skip reason: ${firstSkip?.error ?? 'none'}`,
      `while sick: ${whileSick.sickHostBehind} instances of the sick host behind, ${whileSick.otherHostsBehind} of other hosts; its agent synced its other hosts ${whileSick.reportsOfNeighbours} times`,
    ]);
  },
  { timeout: 120_000 },
);

after(async () => {
  await rig?.dispose(outcome === undefined || outcome.invariants.violations.length > 0);
});

defineInvariantTests(() => outcome);

test('the sick host failed, then was skipped with the reason while its breaker was open; the others went on', () => {
  assert.ok(reportsOf(sickHost, 'failed').length >= 1);
  const skipped = reportsOf(sickHost, 'skipped');
  assert.ok(skipped.length >= 1);
  assert.match(skipped[0]?.error ?? '', /circuit open/);
  assert.ok(outcome.stats.agents.breakerOpened >= 1);
  assert.equal(whileSick?.otherHostsBehind, 0);
  assert.ok((whileSick?.sickHostBehind ?? 0) > 0, 'the sick host had drift left while sick');
  assert.ok((whileSick?.reportsOfNeighbours ?? 0) >= 1, 'the agent of the sick host synced its other hosts');
  assert.ok(reportsOf(sickHost, 'synced').length >= 1);
  assert.equal(outcome.figures.committed, outcome.fleet.changesExpected);
});
