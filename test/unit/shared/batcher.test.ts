import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createBatcher } from '../../../shared/batcher.ts';

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

  test('flushes run one at a time, in order; items added meanwhile form the next batch', async () => {
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
