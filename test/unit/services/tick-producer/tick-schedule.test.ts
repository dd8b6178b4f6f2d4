import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { planCycle } from '../../../../services/tick-producer/tick-schedule.ts';

const START_MS = 1_714_564_800_000;

describe('planCycle', () => {
  test('an empty fleet plans nothing', () => {
    assert.deepEqual(planCycle([], 600_000, START_MS), []);
  });

  test('one host is due at the start of the cycle', () => {
    assert.deepEqual(planCycle(['compute-1'], 600_000, START_MS), [{ host: 'compute-1', dueAtMs: START_MS }]);
  });

  test('hosts are spread evenly over the interval', () => {
    assert.deepEqual(planCycle(['a', 'b', 'c', 'd'], 1_000, START_MS), [
      { host: 'a', dueAtMs: START_MS },
      { host: 'b', dueAtMs: START_MS + 250 },
      { host: 'c', dueAtMs: START_MS + 500 },
      { host: 'd', dueAtMs: START_MS + 750 },
    ]);
  });

  test('hosts are sorted, so each keeps its slot whatever order they are listed in', () => {
    const plan = planCycle(['c', 'a', 'b'], 900, START_MS);
    assert.deepEqual(plan, [
      { host: 'a', dueAtMs: START_MS },
      { host: 'b', dueAtMs: START_MS + 300 },
      { host: 'c', dueAtMs: START_MS + 600 },
    ]);
    assert.deepEqual(planCycle(['b', 'c', 'a'], 900, START_MS), plan);
  });

  test('duplicates get one tick', () => {
    assert.deepEqual(planCycle(['b', 'a', 'b', 'a', 'a'], 1_000, START_MS), [
      { host: 'a', dueAtMs: START_MS },
      { host: 'b', dueAtMs: START_MS + 500 },
    ]);
  });

  test('an interval that does not divide evenly rounds offsets down to whole milliseconds', () => {
    assert.deepEqual(
      planCycle(['a', 'b', 'c'], 1_000, START_MS).map((tick) => tick.dueAtMs - START_MS),
      [0, 333, 666],
    );
  });

  test('the input list is not modified', () => {
    const hosts = ['c', 'a', 'b', 'a'];
    planCycle(hosts, 1_000, START_MS);
    assert.deepEqual(hosts, ['c', 'a', 'b', 'a']);
  });

  const sizes: { hosts: number; intervalMs: number }[] = [
    { hosts: 1, intervalMs: 1 },
    { hosts: 2, intervalMs: 1 },
    { hosts: 3, intervalMs: 10 },
    { hosts: 7, intervalMs: 1_000 },
    { hosts: 1_000, intervalMs: 600_000 },
    { hosts: 1_001, intervalMs: 600_000 },
    { hosts: 5_000, intervalMs: 1_000 },
  ];
  for (const { hosts: count, intervalMs } of sizes) {
    test(`${count} hosts over ${intervalMs} ms: whole-ms offsets in [start, start + interval), sorted, unique`, () => {
      const hosts = Array.from({ length: count }, (_, i) => `compute-${String(count - i).padStart(5, '0')}`);
      const plan = planCycle(hosts, intervalMs, START_MS);
      assert.equal(plan.length, count);
      assert.deepEqual(
        plan.map((tick) => tick.host),
        [...hosts].sort(),
      );
      let previous = -Infinity;
      for (const tick of plan) {
        assert.ok(Number.isInteger(tick.dueAtMs), `${tick.host} at ${tick.dueAtMs}`);
        assert.ok(tick.dueAtMs >= START_MS && tick.dueAtMs < START_MS + intervalMs, `${tick.host} at ${tick.dueAtMs}`);
        assert.ok(tick.dueAtMs >= previous, 'due times never go backwards');
        previous = tick.dueAtMs;
      }
    });
  }
});
