/**
 * Fault: a sync agent killed with SIGKILL in the middle of a burst of libvirt lifecycle
 * events, then restarted. On the shared libvirtd (test+unix:///default: real lifecycle
 * events), DOMAINS domains of a host of the test's own run, their rows in sync. The agent
 * watches events with a 2 s debounce and there is no tick producer at all (in production
 * the next tick may be 600 s away). Through a second libvirt connection the burst pauses
 * a third of the domains and destroys another third; the agent is killed halfway, while
 * the events it received still wait in its debouncer, and the rest of the burst happens
 * while it is down. The restarted agent must look at its host at once (the startup sync,
 * AGENT_STARTUP_SYNC_WINDOW_MS = 1 s here): every change committed within that one host
 * sync, nothing lost, nothing applied twice.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { Domain } from '@unraid/libvirt';
import { waitFor } from '../../tools/wait-for.ts';
import type { PlannedInstance } from '../../tools/fleet/fleet-plan.ts';
import { DRIFT, IN_SYNC, type Scenario } from '../../tools/fleet/scenarios.ts';
import { type DaemonDomains, ensureLibvirtd, LIBVIRTD_URI, openDaemonDomains } from '../../tools/local-env/libvirtd.ts';
import { type FaultOutcome, type FaultRig, createFaultRig, SERVICE_START_TIMEOUT_MS } from './harness/fault-rig.ts';
import { printFaultSummary } from './harness/fault-report.ts';
import { defineInvariantTests } from './harness/invariant-tests.ts';

const DOMAINS = 60;
const scenario = (name: string): Scenario => {
  const found = [...DRIFT, ...IN_SYNC].find((s) => s.name === name);
  if (found === undefined) throw new Error(`no scenario ${name}`);
  return found;
};
/** Round-robin over the domains: paused, destroyed, left alone. */
const BURST = [scenario('paused-behind-back'), scenario('shut-off-behind-back'), scenario('in-sync-running')] as const;

let daemon: DaemonDomains | undefined;
let rig: FaultRig | undefined;
let outcome: FaultOutcome | undefined;
const seen = { changedBeforeKill: 0, changedAfterKill: 0, committedAtKill: 0, restartToSettledMs: 0, restartedSyncs: 0, reportsOfRestarted: [] as number[] };

before(
  async () => {
    await ensureLibvirtd();
    daemon = await openDaemonDomains();
    const d = daemon;
    const host = `burst-${randomBytes(3).toString('hex')}`;
    const domains: Array<{ domain: Domain; instance: PlannedInstance }> = [];
    for (let i = 0; i < DOMAINS; i++) {
      const name = `${host}-${i}`;
      const uuid = await d.start(name);
      domains.push({ domain: await d.hypervisor.domainLookupByName(name), instance: { uuid, host, scenario: BURST[i % BURST.length] as Scenario, destination: null } });
    }
    rig = await createFaultRig({ fault: 'agent-kill9-event-burst', plan: { hosts: [host], instances: domains.map((x) => x.instance) }, agents: 1 });
    const r = rig;
    const agentEnv = { LIBVIRT_URI: LIBVIRTD_URI, AGENT_LIFECYCLE_EVENTS: 'true', EVENT_DEBOUNCE_MS: '2000', AGENT_STARTUP_SYNC: 'true', AGENT_STARTUP_SYNC_WINDOW_MS: '1000' };
    r.startAuditSubscriber();
    r.startWriter();
    let consuming = false;
    const first = r.startAgent(0, agentEnv, (entry) => {
      consuming ||= entry.msg === 'consuming ticks';
    });
    await waitFor('the agent watching events', () => consuming, { timeoutMs: SERVICE_START_TIMEOUT_MS });
    // Its own startup sync (within 1 s) comes before the burst, so every change of the burst is news to it.
    await waitFor('the first agent\'s startup sync', () => first.stats.hostsSynced >= 1, { timeoutMs: 10_000 }).catch(() => undefined);

    const changes = domains.filter((x) => x.instance.scenario.rule !== null);
    const apply = async ({ domain, instance }: (typeof domains)[number]): Promise<void> => {
      if (instance.scenario.name === 'paused-behind-back') await d.hypervisor.domainSuspend(domain);
      else await d.hypervisor.domainDestroy(domain);
    };
    const half = Math.floor(changes.length / 2);
    for (const change of changes.slice(0, half)) await apply(change);
    seen.changedBeforeKill = half;
    await r.kill(first);
    seen.committedAtKill = await r.count('change_outbox');
    for (const change of changes.slice(half)) await apply(change);
    seen.changedAfterKill = changes.length - half;

    const restartedAt = Date.now();
    const restarted = r.startAgent(0, agentEnv, (entry) => {
      if (entry.msg === 'host synced') seen.reportsOfRestarted.push(Date.now() - restartedAt);
    });
    const settled = await r.settle(90_000);
    seen.restartToSettledMs = Date.now() - restartedAt;
    seen.restartedSyncs = restarted.stats.hostsSynced;
    outcome = await r.finish(settled);
    printFaultSummary('sync-agent kill -9 mid-burst of lifecycle events (no ticks), restarted', outcome, [
      `${DOMAINS} domains on ${LIBVIRTD_URI}; ${seen.changedBeforeKill} changed before the kill (events in the debouncer), ${seen.changedAfterKill} while the agent was down; ${seen.committedAtKill} committed at the kill`,
      `restarted agent: host syncs at ${seen.reportsOfRestarted.map((ms) => `${(ms / 1000).toFixed(1)} s`).join(', ')} after its start; settled ${(seen.restartToSettledMs / 1000).toFixed(1)} s after the restart`,
    ]);
  },
  { timeout: 240_000 },
);

after(async () => {
  await rig?.dispose(outcome === undefined || outcome.invariants.violations.length > 0);
  await daemon?.removeAll();
  await daemon?.close();
});

defineInvariantTests(() => {
  if (outcome === undefined) throw new Error('agent-kill9-event-burst did not run');
  return outcome;
});

test('the kill lost the agent\'s pending events, and the restarted agent\'s first host sync committed every change', () => {
  assert.ok(outcome !== undefined);
  assert.ok(seen.committedAtKill < seen.changedBeforeKill, `committed at the kill ${seen.committedAtKill}, changed before it ${seen.changedBeforeKill}`);
  // No ticks ran: only the restarted agent's startup sync could see the changes made while it was down.
  assert.equal(seen.restartedSyncs, 1, 'the restarted agent synced its host exactly once');
  assert.equal(outcome.figures.committed, outcome.fleet.changesExpected);
  assert.equal(outcome.figures.deadlettered, 0);
});
