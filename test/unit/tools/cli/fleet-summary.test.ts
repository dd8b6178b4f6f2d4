import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PowerState } from '../../../../shared/power-state.ts';
import { VmState } from '../../../../shared/vm-state.ts';
import { summarizeFleet } from '../../../../tools/cli/fleet-summary.ts';

const now = new Date('2026-01-01T12:00:00.000Z');
const minutesAgo = (minutes: number): Date => new Date(now.getTime() - minutes * 60_000);
const report = (host: string, startedAt: Date) => ({
  host,
  trigger: 'periodic',
  outcome: 'synced',
  error: null,
  startedAt,
  durationMs: 12,
  report: {
    schemaVersion: 1, host, tickId: null, cycle: 1, trigger: 'periodic', startedAt: startedAt.toISOString(), durationMs: 12,
    outcome: 'synced', error: null, dbCount: 2, hypervisorCount: 2, compared: 2, drifted: 1, missing: 0, unknown: 0, published: 1,
  },
});

test('folds grouped counts into totals per power state, vm state and host', () => {
  const summary = summarizeFleet(
    {
      now,
      hosts: [{ host: 'a', enabled: true }, { host: 'b', enabled: true }],
      counts: [
        { host: 'a', powerState: PowerState.RUNNING, vmState: VmState.ACTIVE, count: 3 },
        { host: 'a', powerState: PowerState.SHUTOFF, vmState: VmState.SHUTOFF, count: 1 },
        { host: 'b', powerState: PowerState.RUNNING, vmState: VmState.ACTIVE, count: 2 },
      ],
      softDeleted: 4,
      lastSyncs: [],
      liveness: [],
      pipeline: [],
    },
    60_000,
  );
  assert.equal(summary.instances.live, 6);
  assert.equal(summary.instances.softDeleted, 4);
  assert.equal(summary.instances.byPowerState.RUNNING, 5);
  assert.equal(summary.instances.byPowerState.SHUTOFF, 1);
  assert.equal(summary.instances.byPowerState.PAUSED, 0, 'every state is listed, zero or not');
  assert.equal(summary.instances.byVmState.active, 5);
  assert.deepEqual(summary.hostList.map((h) => [h.host, h.instances]), [['a', 4], ['b', 2]]);
});

const overdueCases: Array<{ name: string; enabled: boolean; syncedMinutesAgo: number | null; overdue: boolean }> = [
  { name: 'never synced', enabled: true, syncedMinutesAgo: null, overdue: true },
  { name: 'synced within the limit', enabled: true, syncedMinutesAgo: 5, overdue: false },
  { name: 'synced just past the limit', enabled: true, syncedMinutesAgo: 21, overdue: true },
  { name: 'disabled and never synced', enabled: false, syncedMinutesAgo: null, overdue: false },
];
for (const c of overdueCases) {
  test(`overdue: ${c.name}`, () => {
    const summary = summarizeFleet(
      {
        now,
        hosts: [{ host: 'h', enabled: c.enabled }],
        counts: [],
        softDeleted: 0,
        lastSyncs: c.syncedMinutesAgo === null ? [] : [report('h', minutesAgo(c.syncedMinutesAgo))],
        liveness: [],
        pipeline: [],
      },
      20 * 60_000,
    );
    assert.equal(summary.hostList[0]?.overdue, c.overdue);
    assert.equal(summary.hosts.overdue, c.overdue ? 1 : 0);
  });
}

test('a host with instances but no compute_hosts row is listed and counted as unregistered', () => {
  const summary = summarizeFleet(
    { now, hosts: [], counts: [{ host: 'stray', powerState: PowerState.RUNNING, vmState: VmState.ACTIVE, count: 1 }], softDeleted: 0, lastSyncs: [], liveness: [], pipeline: [] },
    60_000,
  );
  assert.deepEqual(summary.hostList.map((h) => ({ host: h.host, registered: h.registered, overdue: h.overdue })), [{ host: 'stray', registered: false, overdue: false }]);
  assert.equal(summary.hosts.unregisteredWithInstances, 1);
});

test('the last sync carries the report figures, or nulls when the stored report does not parse', () => {
  const good = report('a', minutesAgo(1));
  const bad = { ...report('b', minutesAgo(1)), report: { schemaVersion: 99 } };
  const summary = summarizeFleet({ now, hosts: [{ host: 'a', enabled: true }, { host: 'b', enabled: true }], counts: [], softDeleted: 0, lastSyncs: [good, bad], liveness: [], pipeline: [] }, 60_000 * 20);
  assert.deepEqual([summary.hostList[0]?.lastSync?.compared, summary.hostList[0]?.lastSync?.drifted, summary.hostList[0]?.lastSync?.ageMs], [2, 1, 60_000]);
  assert.equal(summary.hostList[1]?.lastSync?.compared, null);
  assert.equal(summary.hostList[1]?.lastSync?.outcome, 'synced');
});

test('a judged host is overdue by its last successful sync received, failed reports do not reset it', () => {
  const view = (host: string, lastSyncedAt: Date | null) => ({
    host, state: 'failing' as const, since: minutesAgo(30), reason: 'r', consecutiveFailures: 9, lastReceivedAt: minutesAgo(1), lastSyncedAt,
  });
  const summary = summarizeFleet(
    {
      now,
      hosts: [{ host: 'a', enabled: true }, { host: 'b', enabled: true }, { host: 'c', enabled: true }],
      counts: [],
      softDeleted: 0,
      // Every host sent a report a minute ago; only b's last success is recent.
      lastSyncs: ['a', 'b', 'c'].map((host) => ({ ...report(host, minutesAgo(1)), outcome: 'failed' })),
      liveness: [view('a', minutesAgo(25)), view('b', minutesAgo(2)), view('c', null)],
      pipeline: [],
    },
    20 * 60_000,
  );
  assert.deepEqual(summary.hostList.map((h) => [h.host, h.overdue]), [['a', true], ['b', false], ['c', true]]);
  assert.equal(summary.hosts.failing, 3);
});
