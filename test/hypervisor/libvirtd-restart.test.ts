/**
 * A host's libvirtd restarted in the middle of ticking (as a package upgrade or an operator
 * does): its guests keep running, and virtsync must lose nothing and report no failure. The
 * event watcher's virsh reconnects by itself; the agent's libvirt reader replaces its dead
 * connection and waits out the restart. A libvirtd that stays down still fails the host's
 * syncs, once the wait is over.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { loadConfig, syncAgentEnv } from '../../shared/config.ts';
import { PowerState } from '../../shared/power-state.ts';
import { VmState } from '../../shared/vm-state.ts';
import type { QemuInstance } from '../../tools/qemu/qemu-cloud.ts';
import { waitFor } from '../../tools/wait-for.ts';
import { createQemuLane, H1, H2, type QemuLane } from './qemu-lane.ts';

describe('libvirtd restarted on a host mid-cycle', () => {
  let lane: QemuLane;
  let victim: QemuInstance;
  let paused: QemuInstance;

  before(async () => {
    lane = await createQemuLane({ name: 'libvirtd-restart' });
    lane.startPipeline();
    lane.startAgent({ hosts: [H1], events: true });
    lane.startAgent({ hosts: [H2], events: true });
    [victim, paused] = await Promise.all([lane.boot(H1, 'restart-destroyed'), lane.boot(H1, 'restart-paused'), lane.boot(H2, 'restart-bystander')]);
    await Promise.all([lane.waitForAgentWatching(H1), lane.waitForAgentWatching(H2)]);
    lane.startTickProducer(1_000);
    // The agent's connection to qemu-h1 is open and in use before the restart.
    await lane.tick([H1, H2]);
  });

  after(async () => {
    await lane?.dispose();
  });

  let reportsBefore = 0;

  test('nothing is lost: changes after each restart reach the rows through events and ticks', async () => {
    reportsBefore = lane.recorder.reports.length;
    await lane.hosts.restartLibvirtd(H1);
    // A tick is the first to ask libvirt after the restart (nothing changed, so no event asks first).
    await lane.tick([H1]);
    await lane.hosts.virsh(H1, 'destroy', victim.name);
    await lane.waitForRow(victim.uuid, 'the destroy after the restart', (row) => row.powerState === PowerState.SHUTOFF && row.vmState === VmState.SHUTOFF);
    // A second restart: a breaker opened by the first would now hold the host's syncs back.
    await lane.hosts.restartLibvirtd(H1);
    await lane.tick([H1]);
    await lane.hosts.virsh(H1, 'suspend', paused.name);
    await lane.waitForRow(paused.uuid, 'the suspend after the second restart', (row) => row.powerState === PowerState.PAUSED);
    await lane.tick([H1, H2]);
    await lane.settle();
    assert.deepEqual(await lane.endProblems(), []);
  });

  // The tick producer ticks every second, so ticks fall while libvirtd is down (its socket
  // gone for 0.5-5 s here): those reads wait for the daemon (LIBVIRT_RECONNECT_WAIT_MS).
  test('no host report fails across the restarts', () => {
    const failed = lane.recorder.reports.slice(reportsBefore).filter((report) => report.outcome !== 'synced');
    assert.deepEqual(failed.map((report) => `${report.host} ${report.outcome}: ${report.error}`), []);
  });

  test('a libvirtd that stays down fails the host\'s reports once the wait is over; back, the host syncs', async () => {
    const from = lane.recorder.reports.length;
    const reportsOfH1 = () => lane.recorder.reports.slice(from).filter((report) => report.host === H1);
    await lane.hosts.stopLibvirtd(H1);
    try {
      await waitFor('a failed report of qemu-h1', () => reportsOfH1().some((report) => report.outcome === 'failed'), { timeoutMs: 30_000 });
    } finally {
      await lane.hosts.startLibvirtd(H1);
    }
    const failed = reportsOfH1().find((report) => report.outcome === 'failed');
    assert.match(failed?.error ?? '', /Failed to connect socket.* \(still away after \d+ ms\)$/);
    const { libvirtReconnectWaitMs } = loadConfig(syncAgentEnv, { AGENT_HOSTS: H1 });
    assert.ok((failed?.durationMs ?? 0) >= libvirtReconnectWaitMs, `the sync waited LIBVIRT_RECONNECT_WAIT_MS first: ${failed?.durationMs} ms`);
    const back = lane.recorder.reports.length;
    await waitFor('a synced report of qemu-h1 after its libvirtd is back', () => lane.recorder.reports.slice(back).some((r) => r.host === H1 && r.outcome === 'synced'), {
      timeoutMs: 30_000,
    });
    await lane.tick([H1, H2]);
    await lane.settle();
    assert.deepEqual(await lane.endProblems(), []);
  });
});
