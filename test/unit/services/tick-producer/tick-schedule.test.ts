import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { planSlots, slotOffsetMs } from '../../../../services/tick-producer/tick-schedule.ts';

const INTERVAL = 600_000;
const hosts = (n: number): string[] => Array.from({ length: n }, (_, i) => `cmp-${String(i).padStart(4, '0')}`);
const T0 = Date.UTC(2026, 10, 24, 20, 0, 0);

describe('planSlots', () => {
  test('every host gets exactly one slot in any window one interval long', () => {
    for (const fromMs of [T0, T0 + 1, T0 + 123_456, T0 + INTERVAL - 1]) {
      const slots = planSlots(hosts(500), INTERVAL, fromMs, fromMs + INTERVAL);
      assert.equal(slots.length, 500);
      assert.equal(new Set(slots.map((s) => s.host)).size, 500);
      assert.ok(slots.every((s) => s.dueAtMs >= fromMs && s.dueAtMs < fromMs + INTERVAL));
    }
  });

  test('slots are in time order and a host ticks exactly one interval apart', () => {
    const slots = planSlots(hosts(50), INTERVAL, T0, T0 + 3 * INTERVAL);
    assert.deepEqual(slots, [...slots].sort((a, b) => a.dueAtMs - b.dueAtMs || a.host.localeCompare(b.host)));
    for (const host of hosts(50)) {
      const mine = slots.filter((s) => s.host === host);
      assert.equal(mine.length, 3);
      assert.equal(mine[1]!.dueAtMs - mine[0]!.dueAtMs, INTERVAL);
      assert.equal(mine[2]!.cycle, mine[0]!.cycle + 2);
      assert.equal(mine[0]!.cycle, Math.floor((mine[0]!.dueAtMs - slotOffsetMs(host, INTERVAL)) / INTERVAL));
    }
  });

  test('a leader that takes over mid-way continues the same schedule: no slot twice, none lost', () => {
    const fleet = hosts(300);
    const whole = planSlots(fleet, INTERVAL, T0, T0 + 2 * INTERVAL);
    const takeoverMs = T0 + 777_777;
    const split = [...planSlots(fleet, INTERVAL, T0, takeoverMs), ...planSlots(fleet, INTERVAL, takeoverMs, T0 + 2 * INTERVAL)];
    assert.deepEqual(split, whole);
  });

  test("adding or removing hosts moves no other host's slot", () => {
    const before = planSlots(hosts(100), INTERVAL, T0, T0 + INTERVAL);
    const after = planSlots([...hosts(100).slice(10), 'new-1', 'new-2'], INTERVAL, T0, T0 + INTERVAL);
    for (const slot of after.filter((s) => !s.host.startsWith('new-'))) {
      assert.equal(slot.dueAtMs, before.find((s) => s.host === slot.host)?.dueAtMs, slot.host);
    }
  });

  test('a large fleet is spread over the interval, not bunched', () => {
    const slots = planSlots(hosts(2_000), INTERVAL, T0, T0 + INTERVAL);
    const buckets = new Array<number>(10).fill(0);
    for (const slot of slots) buckets[Math.floor(((slot.dueAtMs - T0) / INTERVAL) * 10)]!++;
    // 200 expected per tenth of the interval; a hash keeps every tenth well within 2x.
    assert.ok(Math.max(...buckets) < 300 && Math.min(...buckets) > 100, `buckets ${buckets.join(',')}`);
  });

  test('duplicate hosts tick once; no hosts, no slots; empty window, no slots', () => {
    assert.equal(planSlots(['a', 'a', 'b'], INTERVAL, T0, T0 + INTERVAL).length, 2);
    assert.deepEqual(planSlots([], INTERVAL, T0, T0 + INTERVAL), []);
    assert.deepEqual(planSlots(hosts(10), INTERVAL, T0, T0), []);
  });

  test('offsets are stable and within the interval', () => {
    for (const host of hosts(100)) {
      const offset = slotOffsetMs(host, INTERVAL);
      assert.equal(offset, slotOffsetMs(host, INTERVAL));
      assert.ok(offset >= 0 && offset < INTERVAL);
    }
  });
});
