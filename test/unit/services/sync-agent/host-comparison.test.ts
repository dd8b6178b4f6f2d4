import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compareHost, type Discrepancy } from '../../../../services/sync-agent/host-comparison.ts';
import type { HostInstance } from '../../../../shared/db/instances.ts';
import { PowerState } from '../../../../shared/power-state.ts';
import { VmState } from '../../../../shared/vm-state.ts';

const UUID = {
  a: '00000000-0000-4000-8000-00000000000a',
  b: '00000000-0000-4000-8000-00000000000b',
  c: '00000000-0000-4000-8000-00000000000c',
  d: '00000000-0000-4000-8000-00000000000d',
  e: '00000000-0000-4000-8000-00000000000e',
  f: '00000000-0000-4000-8000-00000000000f',
} as const;

function instance(uuid: string, powerState: PowerState, vmState: VmState = VmState.ACTIVE, missedReports = 0): HostInstance {
  return { uuid, powerState, vmState, taskState: null, missedReports, shadowed: false };
}

function snapshot(
  states: [string, PowerState][],
  unreadable: string[] = [],
  domainCount = states.length + unreadable.length,
): Parameters<typeof compareHost>[1] {
  return { domainCount, states: new Map(states), unreadable: new Set(unreadable) };
}

/** What was found, without the row as read (checked on its own below). */
function statesOf(discrepancies: readonly Discrepancy[]): Array<Pick<Discrepancy, 'uuid' | 'powerState'>> {
  return discrepancies.map(({ uuid, powerState }) => ({ uuid, powerState }));
}

describe('compareHost', () => {
  test('each discrepancy carries the row as it was read, for the writer to tell a later cloud write', () => {
    const read = { ...instance(UUID.a, PowerState.RUNNING, VmState.ACTIVE), taskState: 'spawning' };
    const result = compareHost([read, instance(UUID.b, PowerState.RUNNING)], snapshot([[UUID.a, PowerState.SHUTOFF]]));
    assert.deepEqual(result.discrepancies, [
      { uuid: UUID.a, powerState: PowerState.SHUTOFF, expected: { powerState: PowerState.RUNNING, vmState: VmState.ACTIVE, taskState: 'spawning' } },
      { uuid: UUID.b, powerState: null, expected: { powerState: PowerState.RUNNING, vmState: VmState.ACTIVE, taskState: null } },
    ]);
  });

  test('an empty host has nothing to compare', () => {
    assert.deepEqual(compareHost([], snapshot([])), {
      discrepancies: [],
      dbCount: 0,
      hypervisorCount: 0,
      compared: 0,
      drifted: 0,
      missing: 0,
      unknownUuids: [],
    });
  });

  test('rows that agree with the hypervisor produce no discrepancy', () => {
    const rows = [instance(UUID.a, PowerState.RUNNING), instance(UUID.b, PowerState.SHUTOFF, VmState.SHUTOFF)];
    const result = compareHost(rows, snapshot([[UUID.a, PowerState.RUNNING], [UUID.b, PowerState.SHUTOFF]]));
    assert.deepEqual(result, {
      discrepancies: [],
      dbCount: 2,
      hypervisorCount: 2,
      compared: 2,
      drifted: 0,
      missing: 0,
      unknownUuids: [],
    });
  });

  test('a domain in another state than its row is drifted, with the hypervisor state', () => {
    const rows = [instance(UUID.a, PowerState.RUNNING), instance(UUID.b, PowerState.RUNNING)];
    const result = compareHost(rows, snapshot([[UUID.a, PowerState.SHUTOFF], [UUID.b, PowerState.RUNNING]]));
    assert.deepEqual(statesOf(result.discrepancies), [{ uuid: UUID.a, powerState: PowerState.SHUTOFF }]);
    assert.equal(result.drifted, 1);
    assert.equal(result.missing, 0);
    assert.equal(result.compared, 2);
  });

  test('a hypervisor NOSTATE against a RUNNING row is drifted, not missing', () => {
    const result = compareHost([instance(UUID.a, PowerState.RUNNING)], snapshot([[UUID.a, PowerState.NOSTATE]]));
    assert.deepEqual(statesOf(result.discrepancies), [{ uuid: UUID.a, powerState: PowerState.NOSTATE }]);
    assert.equal(result.drifted, 1);
    assert.equal(result.missing, 0);
  });

  test('a row the hypervisor does not know is missing (powerState null), even if the row says NOSTATE', () => {
    const rows = [instance(UUID.a, PowerState.RUNNING), instance(UUID.b, PowerState.NOSTATE, VmState.ERROR)];
    const result = compareHost(rows, snapshot([]));
    assert.deepEqual(statesOf(result.discrepancies), [
      { uuid: UUID.a, powerState: null },
      { uuid: UUID.b, powerState: null },
    ]);
    assert.equal(result.missing, 2);
    assert.equal(result.compared, 0);
    assert.equal(result.drifted, 0);
  });

  test('domains no row places on this host are unknown, not discrepancies', () => {
    const result = compareHost(
      [instance(UUID.a, PowerState.RUNNING)],
      snapshot([[UUID.a, PowerState.RUNNING], [UUID.b, PowerState.RUNNING], [UUID.c, PowerState.SHUTOFF]]),
    );
    assert.deepEqual(statesOf(result.discrepancies), []);
    assert.deepEqual([...result.unknownUuids].sort(), [UUID.b, UUID.c]);
    assert.equal(result.compared, 1);
  });

  test('an unreadable domain with a row is neither compared, drifted nor missing', () => {
    const result = compareHost(
      [instance(UUID.a, PowerState.RUNNING), instance(UUID.b, PowerState.RUNNING)],
      snapshot([[UUID.b, PowerState.RUNNING]], [UUID.a]),
    );
    assert.deepEqual(statesOf(result.discrepancies), []);
    assert.equal(result.compared, 1);
    assert.equal(result.drifted, 0);
    assert.equal(result.missing, 0);
    assert.deepEqual(result.unknownUuids, []);
    assert.equal(result.hypervisorCount, 2);
  });

  test('an unreadable domain without a row is reported as unknown', () => {
    const result = compareHost([], snapshot([], [UUID.a]));
    assert.deepEqual(statesOf(result.discrepancies), []);
    assert.deepEqual(result.unknownUuids, [UUID.a]);
  });

  test('hypervisorCount is the listed domain count, not the number of states read', () => {
    const result = compareHost([instance(UUID.a, PowerState.RUNNING)], snapshot([[UUID.a, PowerState.RUNNING]], [], 7));
    assert.equal(result.hypervisorCount, 7);
    assert.equal(result.dbCount, 1);
  });

  test('a mixed host: every count adds up', () => {
    const rows = [
      instance(UUID.a, PowerState.RUNNING), // equal
      instance(UUID.b, PowerState.RUNNING), // drifted → SHUTOFF
      instance(UUID.c, PowerState.PAUSED, VmState.PAUSED), // missing
      instance(UUID.d, PowerState.RUNNING), // unreadable
    ];
    const result = compareHost(
      rows,
      snapshot(
        [[UUID.a, PowerState.RUNNING], [UUID.b, PowerState.SHUTOFF], [UUID.e, PowerState.RUNNING]],
        [UUID.d, UUID.f],
      ),
    );
    assert.deepEqual(statesOf(result.discrepancies), [
      { uuid: UUID.b, powerState: PowerState.SHUTOFF },
      { uuid: UUID.c, powerState: null },
    ]);
    assert.equal(result.dbCount, 4);
    assert.equal(result.hypervisorCount, 5);
    assert.equal(result.compared, 2);
    assert.equal(result.drifted, 1);
    assert.equal(result.missing, 1);
    assert.deepEqual([...result.unknownUuids].sort(), [UUID.e, UUID.f]);
    assert.equal(result.discrepancies.length, result.drifted + result.missing);
  });

  test('discrepancies keep the row order', () => {
    const rows = [UUID.f, UUID.c, UUID.a].map((uuid) => instance(uuid, PowerState.RUNNING));
    const result = compareHost(rows, snapshot([]));
    assert.deepEqual(
      result.discrepancies.map((d) => d.uuid),
      [UUID.f, UUID.c, UUID.a],
    );
  });

  test('an in-sync row being counted as missed is reported again, so the writer clears its count', () => {
    const result = compareHost(
      [instance('a', PowerState.RUNNING, VmState.ACTIVE, 2), instance('b', PowerState.RUNNING)],
      snapshot([
        ['a', PowerState.RUNNING],
        ['b', PowerState.RUNNING],
      ]),
    );
    assert.deepEqual(statesOf(result.discrepancies), [{ uuid: 'a', powerState: PowerState.RUNNING }]);
    assert.equal(result.drifted, 0);
  });

  test("an in-sync row a report-only writer's shadow has otherwise is reported, so the writer drops its entry", () => {
    const result = compareHost(
      [{ ...instance('a', PowerState.RUNNING), shadowed: true }, instance('b', PowerState.RUNNING)],
      snapshot([
        ['a', PowerState.RUNNING],
        ['b', PowerState.RUNNING],
      ]),
    );
    assert.deepEqual(statesOf(result.discrepancies), [{ uuid: 'a', powerState: PowerState.RUNNING }]);
    assert.equal(result.drifted, 0);
  });
});
