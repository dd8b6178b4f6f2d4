import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type BatchLane, createBatcher } from '../../../shared/batcher.ts';
import { seededRandom } from '../../../tools/fleet/seeded-random.ts';

/** A promise with its resolve/reject exposed. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (err: unknown) => void } {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Long enough that the linger timer never fires during a test that drains. */
const NEVER_MS = 60_000;

describe('createBatcher', () => {
  test('flushes as soon as maxSize items are pending, without waiting for the linger', async () => {
    const flushed: number[][] = [];
    const batcher = createBatcher<number>({
      maxSize: 3,
      lingerMs: NEVER_MS,
      flush: async (items) => {
        flushed.push(items);
      },
    });
    batcher.add(1);
    batcher.add(2);
    assert.deepEqual(flushed, []);
    batcher.add(3);
    batcher.add(4);
    await batcher.drain();
    assert.deepEqual(flushed, [[1, 2, 3], [4]]);
  });

  test('weights count toward maxSize: a batch is cut once its items weigh maxSize, a heavy item may take it over', async () => {
    const flushed: number[][] = [];
    const batcher = createBatcher<number>({
      maxSize: 10,
      lingerMs: NEVER_MS,
      flush: async (items) => {
        flushed.push(items);
      },
    });
    batcher.add(1, 4);
    batcher.add(2, 4);
    assert.deepEqual(flushed, [], '8 of 10');
    batcher.add(3, 4);
    batcher.add(4, 25);
    batcher.add(5);
    await batcher.drain();
    assert.deepEqual(flushed, [[1, 2, 3], [4], [5]]);
  });

  test('a batch is never bigger than maxSize', async () => {
    const sizes: number[] = [];
    const batcher = createBatcher<number>({
      maxSize: 4,
      lingerMs: NEVER_MS,
      flush: async (items) => {
        sizes.push(items.length);
      },
    });
    for (let i = 0; i < 10; i++) batcher.add(i);
    await batcher.drain();
    assert.deepEqual(sizes, [4, 4, 2]);
  });

  test('flushes a partial batch after the linger', async () => {
    const flushed = deferred<number[]>();
    const batcher = createBatcher<number>({
      maxSize: 100,
      lingerMs: 1,
      flush: async (items) => flushed.resolve(items),
    });
    batcher.add(7);
    batcher.add(8);
    // Nothing calls drain: only the linger timer can flush.
    assert.deepEqual(await flushed.promise, [7, 8]);
    await batcher.drain();
  });

  test('drain flushes the remainder and waits for it', async () => {
    const flushed: string[][] = [];
    const batcher = createBatcher<string>({
      maxSize: 10,
      lingerMs: NEVER_MS,
      flush: async (items) => {
        await Promise.resolve();
        flushed.push(items);
      },
    });
    batcher.add('a');
    batcher.add('b');
    await batcher.drain();
    assert.deepEqual(flushed, [['a', 'b']]);
  });

  test('drain with nothing pending does not flush an empty batch', async () => {
    let calls = 0;
    const batcher = createBatcher<number>({
      maxSize: 2,
      lingerMs: NEVER_MS,
      flush: async () => {
        calls++;
      },
    });
    await batcher.drain();
    batcher.add(1);
    batcher.add(2);
    await batcher.drain();
    await batcher.drain();
    assert.equal(calls, 1);
  });

  test('by default flushes run one at a time, in order; items added meanwhile form the next batch', async () => {
    const events: string[] = [];
    const gates = [deferred(), deferred(), deferred()];
    let call = 0;
    let inFlight = 0;
    let maxInFlight = 0;
    const batcher = createBatcher<number>({
      maxSize: 2,
      lingerMs: NEVER_MS,
      flush: async (items) => {
        const gate = gates[call++];
        assert.ok(gate, 'more flushes than expected');
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        events.push(`start ${items.join(',')}`);
        await gate.promise;
        events.push(`end ${items.join(',')}`);
        inFlight--;
      },
    });
    batcher.add(1);
    batcher.add(2); // batch 1 cut
    batcher.add(3);
    batcher.add(4); // batch 2 cut while batch 1 may still be running
    batcher.add(5);
    const drained = batcher.drain(); // batch 3 cut
    // Release the gates in reverse order: completion order must still follow batch order.
    gates[2]?.resolve();
    gates[1]?.resolve();
    gates[0]?.resolve();
    await drained;
    assert.deepEqual(events, ['start 1,2', 'end 1,2', 'start 3,4', 'end 3,4', 'start 5', 'end 5']);
    assert.equal(maxInFlight, 1);
  });

  test('a failing flush does not stop later flushes', async () => {
    const flushed: number[][] = [];
    const batcher = createBatcher<number>({
      maxSize: 1,
      lingerMs: NEVER_MS,
      flush: async (items) => {
        if (items[0] === 2) throw new Error('flush failed');
        flushed.push(items);
      },
    });
    batcher.add(1);
    batcher.add(2);
    batcher.add(3);
    await batcher.drain();
    batcher.add(4);
    await batcher.drain();
    assert.deepEqual(flushed, [[1], [3], [4]]);
  });

  test('a flush that throws synchronously does not stop later flushes either', async () => {
    const flushed: number[][] = [];
    const batcher = createBatcher<number>({
      maxSize: 1,
      lingerMs: NEVER_MS,
      flush: (items) => {
        if (items[0] === 1) throw new Error('thrown before returning a promise');
        flushed.push(items);
        return Promise.resolve();
      },
    });
    batcher.add(1);
    batcher.add(2);
    await batcher.drain();
    assert.deepEqual(flushed, [[2]]);
  });

  test('drain resolves even when the last flush fails', async () => {
    const batcher = createBatcher<number>({
      maxSize: 10,
      lingerMs: NEVER_MS,
      flush: async () => {
        throw new Error('flush failed');
      },
    });
    batcher.add(1);
    await batcher.drain();
  });

  test('the batch handed to flush is not changed by later adds', async () => {
    const seen: number[][] = [];
    const batcher = createBatcher<number>({
      maxSize: 2,
      lingerMs: NEVER_MS,
      flush: async (items) => {
        seen.push(items);
      },
    });
    batcher.add(1);
    batcher.add(2);
    batcher.add(3);
    await batcher.drain();
    assert.deepEqual(seen, [[1, 2], [3]]);
  });

  test('an urgent item waits only for the flush in flight, ahead of every standard batch pending', async () => {
    const flushed: string[][] = [];
    const gate = deferred();
    const batcher = createBatcher<string>({
      maxSize: 2,
      lingerMs: NEVER_MS,
      flush: async (items) => {
        flushed.push(items);
        if (items[0] === 's1') await gate.promise;
      },
    });
    for (const item of ['s1', 's2', 's3', 's4', 's5', 's6']) batcher.add(item);
    batcher.add('u1', 1, 'urgent');
    batcher.add('u2', 1, 'urgent');
    batcher.add('u3', 1, 'urgent');
    assert.deepEqual(flushed, [['s1', 's2']], 'one flush in flight');
    gate.resolve();
    await batcher.drain();
    assert.deepEqual(flushed, [['s1', 's2'], ['u1', 'u2'], ['u3'], ['s3', 's4'], ['s5', 's6']]);
  });

  test('an urgent item is flushed at once, without the linger, and never shares a batch with standard items', async () => {
    const flushed = deferred<string[]>();
    const batcher = createBatcher<string>({ maxSize: 100, lingerMs: NEVER_MS, flush: async (items) => flushed.resolve(items) });
    batcher.add('s1');
    batcher.add('u1', 1, 'urgent');
    // Nothing calls drain and the linger never fires: only the urgent lane can flush.
    assert.deepEqual(await flushed.promise, ['u1']);
    await batcher.drain();
  });

  test('standard items still go after their linger when urgent ones keep the flusher busy in between', async () => {
    const flushed: string[][] = [];
    const standardFlushed = deferred();
    const batcher = createBatcher<string>({
      maxSize: 100,
      lingerMs: 1,
      flush: async (items) => {
        flushed.push(items);
        if (items.includes('s1')) standardFlushed.resolve();
      },
    });
    batcher.add('s1');
    batcher.add('u1', 1, 'urgent');
    await standardFlushed.promise;
    assert.deepEqual(flushed, [['u1'], ['s1']]);
    await batcher.drain();
  });
});

/** Lets the batcher's promise continuations (a finished flush, the next cut) run. */
async function settle(rounds = 10): Promise<void> {
  for (let i = 0; i < rounds; i++) await Promise.resolve();
}

interface Keyed {
  id: string;
  keys: string[];
}

/** A batcher whose flushes wait until the test ends them: `running` lists what is in flight, in start order. */
function gatedBatcher(options: { maxSize: number; maxInFlight: number; lingerMs?: number }) {
  const running: Array<{ ids: string[]; end: () => void }> = [];
  const started: string[][] = [];
  let peak = 0;
  const batcher = createBatcher<Keyed>({
    maxSize: options.maxSize,
    lingerMs: options.lingerMs ?? NEVER_MS,
    maxInFlight: options.maxInFlight,
    keysOf: (item) => item.keys,
    flush: async (items) => {
      const ids = items.map((item) => item.id);
      const gate = deferred();
      const entry = { ids, end: () => gate.resolve() };
      running.push(entry);
      started.push(ids);
      peak = Math.max(peak, running.length);
      await gate.promise;
      running.splice(running.indexOf(entry), 1);
    },
  });
  /** Ends the flush holding `id` and lets the batcher cut what may go next. */
  const end = async (id: string): Promise<void> => {
    const entry = running.find((flush) => flush.ids.includes(id));
    assert.ok(entry, `${id} is not in flight`);
    entry.end();
    await settle();
  };
  return { batcher, running, started, end, peak: () => peak };
}

describe('createBatcher with several flushes in flight', () => {
  test('runs up to maxInFlight standard flushes at once, never more', async () => {
    const { batcher, running, started, end, peak } = gatedBatcher({ maxSize: 1, maxInFlight: 2 });
    for (const id of ['a', 'b', 'c', 'd']) batcher.add({ id, keys: [id] });
    assert.deepEqual(running.map((flush) => flush.ids), [['a'], ['b']]);
    await end('b');
    assert.deepEqual(running.map((flush) => flush.ids), [['a'], ['c']], 'the slot b freed goes to c');
    const drained = batcher.drain();
    await end('a');
    await end('c');
    await end('d');
    await drained;
    assert.deepEqual(started, [['a'], ['b'], ['c'], ['d']]);
    assert.equal(peak(), 2);
  });

  test('an item sharing a key with a batch in flight stays pending, and so does a later item sharing a key with it', async () => {
    const { batcher, running, started, end } = gatedBatcher({ maxSize: 2, maxInFlight: 2 });
    batcher.add({ id: 'x1', keys: ['x'] });
    batcher.add({ id: 'y1', keys: ['y'] }); // batch [x1, y1] in flight
    batcher.add({ id: 'x2', keys: ['x', 'z'] }); // x is in flight: held back
    batcher.add({ id: 'z1', keys: ['z'] }); // shares z with x2, held back before it: must not overtake it
    batcher.add({ id: 'w1', keys: ['w'] });
    batcher.add({ id: 'v1', keys: ['v'] }); // [w1, v1] cut around the held-back two
    assert.deepEqual(running.map((flush) => flush.ids), [['x1', 'y1'], ['w1', 'v1']]);
    const drained = batcher.drain();
    await end('w1');
    assert.deepEqual(running.map((flush) => flush.ids), [['x1', 'y1']], 'x2 and z1 still wait for x1 even while draining');
    await end('x1');
    assert.deepEqual(running.map((flush) => flush.ids), [['x2', 'z1']], 'both go once x is free, in arrival order');
    await end('x2');
    await drained;
    assert.deepEqual(started, [['x1', 'y1'], ['w1', 'v1'], ['x2', 'z1']]);
  });

  test('items without keysOf all conflict: one flush at a time, whatever maxInFlight', async () => {
    let inFlight = 0;
    let peak = 0;
    const flushed: number[][] = [];
    const batcher = createBatcher<number>({
      maxSize: 1,
      lingerMs: NEVER_MS,
      maxInFlight: 3,
      flush: async (items) => {
        peak = Math.max(peak, ++inFlight);
        await settle(3);
        flushed.push(items);
        inFlight--;
      },
    });
    for (const item of [1, 2, 3, 4]) batcher.add(item);
    await batcher.drain();
    assert.deepEqual(flushed, [[1], [2], [3], [4]]);
    assert.equal(peak, 1);
  });

  test('a partial standard batch waits for the linger even when a slot is free; a full one goes at once', async () => {
    const { batcher, running, end } = gatedBatcher({ maxSize: 3, maxInFlight: 2 });
    for (const id of ['a', 'b', 'c']) batcher.add({ id, keys: [id] });
    batcher.add({ id: 'd', keys: ['d'] });
    assert.deepEqual(running.map((flush) => flush.ids), [['a', 'b', 'c']], 'd alone is a partial batch');
    batcher.add({ id: 'e', keys: ['e'] });
    batcher.add({ id: 'f', keys: ['f'] });
    assert.deepEqual(running.map((flush) => flush.ids), [['a', 'b', 'c'], ['d', 'e', 'f']]);
    const drained = batcher.drain();
    await end('a');
    await end('d');
    await drained;
  });

  test('an urgent item starts at once in the slot kept for the urgent lane, beside full standard slots', async () => {
    const { batcher, running, end } = gatedBatcher({ maxSize: 1, maxInFlight: 2 });
    for (const id of ['s1', 's2', 's3', 's4']) batcher.add({ id, keys: [id] });
    batcher.add({ id: 'u1', keys: ['u'] }, 1, 'urgent');
    batcher.add({ id: 'u2', keys: ['v'] }, 1, 'urgent');
    assert.deepEqual(running.map((flush) => flush.ids), [['s1'], ['s2'], ['u1']]);
    await end('u1');
    assert.deepEqual(running.map((flush) => flush.ids), [['s1'], ['s2'], ['u2']], 'the kept slot again, not a standard one');
    await end('u2');
    assert.deepEqual(running.map((flush) => flush.ids), [['s1'], ['s2']], 'standard work never takes the urgent slot');
    await end('s2');
    assert.deepEqual(running.map((flush) => flush.ids), [['s1'], ['s3']]);
    const drained = batcher.drain();
    for (const id of ['s1', 's3', 's4']) await end(id);
    await drained;
  });

  test('an urgent item that shares a key with a flush in flight waits for that one; standard work meanwhile never holds its keys', async () => {
    const { batcher, running, end } = gatedBatcher({ maxSize: 1, maxInFlight: 2 });
    batcher.add({ id: 's1', keys: ['x'] });
    batcher.add({ id: 's2', keys: ['y'] });
    batcher.add({ id: 's3', keys: ['x'] }); // behind s1 by key
    batcher.add({ id: 's4', keys: ['z'] });
    batcher.add({ id: 'u1', keys: ['x', 'z'] }, 1, 'urgent');
    assert.deepEqual(running.map((flush) => flush.ids), [['s1'], ['s2']]);
    await end('s2');
    // u1 conflicts with s1; s4 shares z with u1 and s3 x: the free slot stays empty rather than make u1 wait more.
    assert.deepEqual(running.map((flush) => flush.ids), [['s1']]);
    await end('s1');
    assert.deepEqual(running.map((flush) => flush.ids), [['u1']], 'u1 goes the moment s1 ends, before s3 of its key');
    const drained = batcher.drain();
    for (const id of ['u1', 's3', 's4']) await end(id);
    await drained;
  });

  // Random streams of items over three keys in both lanes, weights 1-2, flushes ended in random
  // order between arrivals; after each step, the rules are checked against what is in flight.
  test('random schedules: bound, key exclusion, per-key order, every item exactly once, the urgent lane never left waiting', async () => {
    const random = seededRandom(0xba7c4);
    const keys = ['a', 'b', 'c'];
    for (let run = 0; run < 3_000; run++) {
      const maxInFlight = 1 + Math.floor(random() * 3);
      const maxSize = 1 + Math.floor(random() * 3);
      const items = Array.from({ length: 1 + Math.floor(random() * 8) }, (_, index) => {
        const lane: BatchLane = random() < 0.3 ? 'urgent' : 'standard';
        return { id: `i${index}`, keys: keys.filter(() => random() < 0.4), weight: 1 + Math.floor(random() * 2), lane };
      });
      const byId = new Map(items.map((item) => [item.id, item]));
      const { batcher, running, started, peak } = gatedBatcher({ maxSize, maxInFlight });
      const pending: typeof items = [];
      const label = (): string => JSON.stringify({ run, maxInFlight, maxSize, items, started });
      let checkedStarts = 0;
      const arrivals: string[] = [];
      /** A batch (by its first item) and how many items had arrived when it started. */
      const startedAfter = new Map<string, number>();
      /** The rules, on what started since the last check and on what is pending now. */
      const check = (): void => {
        const busy = new Set(running.flatMap((flush) => flush.ids.flatMap((id) => byId.get(id)?.keys ?? [])));
        for (const batch of started.slice(checkedStarts)) {
          startedAfter.set(batch[0] ?? '', arrivals.length);
          const lanes = new Set(batch.map((id) => byId.get(id)?.lane));
          assert.equal(lanes.size, 1, `one lane per batch: ${label()}`);
          pending.splice(0, pending.length, ...pending.filter((item) => !batch.includes(item.id)));
        }
        checkedStarts = started.length;
        const keysOf = (ids: readonly string[]): string[] => ids.flatMap((id) => byId.get(id)?.keys ?? []);
        running.forEach((flush, index) => {
          for (const other of running.slice(index + 1)) assert.ok(!keysOf(flush.ids).some((key) => keysOf(other.ids).includes(key)), `flushes in flight share a key: ${label()}`);
          // Standard work cut after an urgent item arrived never holds its keys: it never makes it wait.
          if (byId.get(flush.ids[0] ?? '')?.lane !== 'standard') return;
          for (const item of pending) {
            if (item.lane === 'urgent' && arrivals.indexOf(item.id) < (startedAfter.get(flush.ids[0] ?? '') ?? 0)) {
              assert.ok(!item.keys.some((key) => keysOf(flush.ids).includes(key)), `a standard batch holds a key of an urgent item before it: ${label()}`);
            }
          }
        });
        const standardRunning = running.filter((flush) => byId.get(flush.ids[0] ?? '')?.lane === 'standard').length;
        assert.ok(standardRunning <= maxInFlight, `more than maxInFlight standard flushes: ${label()}`);
        // A free slot (standard ones included, plus the one kept for the urgent lane) and an urgent item free to go cannot both remain.
        if (running.length < maxInFlight + 1) {
          const urgent = pending.filter((item) => item.lane === 'urgent');
          const blocked = new Set<string>();
          let ahead = 0;
          for (const item of urgent) {
            const free = !item.keys.some((key) => busy.has(key) || blocked.has(key));
            assert.ok(!free || ahead >= maxSize, `an urgent item left waiting beside a free slot: ${label()}`);
            if (free) ahead += item.weight;
            else for (const key of item.keys) blocked.add(key);
          }
        }
      };
      for (const item of items) {
        arrivals.push(item.id);
        batcher.add(item, item.weight, item.lane);
        pending.push(item);
        check();
        while (running.length > 0 && random() < 0.5) {
          running[Math.floor(random() * running.length)]?.end();
          await settle();
          check();
        }
      }
      const drained = batcher.drain();
      await settle();
      check();
      while (running.length > 0) {
        running[Math.floor(random() * running.length)]?.end();
        await settle();
        check();
      }
      await drained;
      assert.ok(peak() <= maxInFlight + 1, `more than maxInFlight and the urgent slot: ${label()}`);
      const order = started.flat();
      assert.deepEqual([...order].sort(), items.map((item) => item.id).sort(), `every item once: ${label()}`);
      // Within a lane, the items of a key start in arrival order, each batch after the previous one of that key ended.
      for (const key of keys) {
        for (const lane of ['urgent', 'standard'] as const) {
          const arrived = items.filter((item) => item.lane === lane && item.keys.includes(key)).map((item) => item.id);
          assert.deepEqual(order.filter((id) => arrived.includes(id)), arrived, `order of key ${key} in the ${lane} lane: ${label()}`);
        }
      }
    }
  });
});

