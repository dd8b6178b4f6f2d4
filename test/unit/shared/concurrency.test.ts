import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createInFlight, createLimiter, mapWithConcurrency } from '../../../shared/concurrency.ts';

/** Lets queued promise continuations run a few rounds, without timers. */
async function settle(rounds = 10): Promise<void> {
  for (let i = 0; i < rounds; i++) await Promise.resolve();
}

describe('mapWithConcurrency', () => {
  test('empty input gives an empty result and never calls fn', async () => {
    let calls = 0;
    const result = await mapWithConcurrency([], 4, async () => {
      calls++;
      return 1;
    });
    assert.deepEqual(result, []);
    assert.equal(calls, 0);
  });

  test('results keep the input order even when calls finish out of order', async () => {
    const items = [5, 1, 4, 2, 3];
    // Each call waits a number of microtask rounds equal to its value: later items finish first.
    const result = await mapWithConcurrency(items, 3, async (item, index) => {
      await settle(item * 3);
      return `${index}:${item * 10}`;
    });
    assert.deepEqual(result, ['0:50', '1:10', '2:40', '3:20', '4:30']);
  });

  test('passes each index exactly once', async () => {
    const seen: number[] = [];
    await mapWithConcurrency(['a', 'b', 'c', 'd'], 2, async (_item, index) => {
      seen.push(index);
    });
    assert.deepEqual([...seen].sort(), [0, 1, 2, 3]);
  });

  for (const { items, limit } of [
    { items: 20, limit: 1 },
    { items: 20, limit: 3 },
    { items: 20, limit: 20 },
    { items: 5, limit: 50 },
  ]) {
    test(`${items} items, limit ${limit}: never more than ${Math.min(limit, items)} in flight, and that many at peak`, async () => {
      let inFlight = 0;
      let peak = 0;
      const result = await mapWithConcurrency(
        Array.from({ length: items }, (_, i) => i),
        limit,
        async (item) => {
          inFlight++;
          peak = Math.max(peak, inFlight);
          await settle(1 + (item % 4));
          inFlight--;
          return item * 2;
        },
      );
      assert.equal(peak, Math.min(limit, items));
      assert.equal(inFlight, 0);
      assert.deepEqual(
        result,
        Array.from({ length: items }, (_, i) => i * 2),
      );
    });
  }

  test('a rejection rejects the whole map', async () => {
    await assert.rejects(
      mapWithConcurrency([1, 2, 3], 2, async (item) => {
        if (item === 2) throw new Error('item 2 failed');
        return item;
      }),
      /item 2 failed/,
    );
  });
});

describe('createLimiter', () => {
  test('runs up to limit at once and queues the rest', async () => {
    const limiter = createLimiter(2);
    let inFlight = 0;
    let peak = 0;
    const run = (value: number) =>
      limiter.run(async () => {
        inFlight++;
        peak = Math.max(peak, inFlight);
        await settle(1 + (value % 3));
        inFlight--;
        return value;
      });
    const results = await Promise.all([1, 2, 3, 4, 5, 6, 7].map(run));
    assert.deepEqual(results, [1, 2, 3, 4, 5, 6, 7]);
    assert.equal(peak, 2);
    assert.equal(limiter.active(), 0);
  });

  test('active() counts the running calls', async () => {
    const limiter = createLimiter(2);
    const releases: (() => void)[] = [];
    const hold = () => new Promise<void>((resolve) => releases.push(resolve));
    const a = limiter.run(hold);
    const b = limiter.run(hold);
    const c = limiter.run(hold);
    await settle();
    assert.equal(limiter.active(), 2);
    assert.equal(releases.length, 2, 'the third call waits for a slot');
    releases[0]?.();
    await settle();
    assert.equal(limiter.active(), 2);
    assert.equal(releases.length, 3, 'the third call got the freed slot');
    releases[1]?.();
    releases[2]?.();
    await Promise.all([a, b, c]);
    assert.equal(limiter.active(), 0);
  });

  test('waiting calls start in arrival order', async () => {
    const limiter = createLimiter(1);
    const started: number[] = [];
    await Promise.all(
      [1, 2, 3, 4].map((n) =>
        limiter.run(async () => {
          started.push(n);
          await settle(2);
        }),
      ),
    );
    assert.deepEqual(started, [1, 2, 3, 4]);
  });

  test('a failing call frees its slot and rejects only its own caller', async () => {
    const limiter = createLimiter(1);
    const failing = limiter.run(async () => {
      throw new Error('boom');
    });
    const next = limiter.run(async () => 'ok');
    await assert.rejects(failing, /boom/);
    assert.equal(await next, 'ok');
    assert.equal(limiter.active(), 0);
  });

  test(
    'a call arriving while a freed slot is being handed to a waiter does not exceed the limit',
    async () => {
      const limiter = createLimiter(1);
      let inFlight = 0;
      let peak = 0;
      const enter = (): void => {
        inFlight++;
        peak = Math.max(peak, inFlight);
      };
      const shortTask = async (): Promise<void> => {
        enter();
        await settle(1);
        inFlight--;
      };
      let releaseFirst!: () => void;
      const firstWork = new Promise<void>((resolve) => (releaseFirst = resolve));
      // fn returns firstWork itself, so run()'s `await fn()` is the first reaction to it.
      const first = limiter.run(() => {
        enter();
        return firstWork;
      });
      void firstWork.then(() => {
        inFlight--;
      });
      const second = limiter.run(shortTask); // queued: waits for the slot
      // Another caller reacting to the same event that frees the slot (e.g. the next delivery).
      let third: Promise<void> | undefined;
      const sameEvent = firstWork.then(() => {
        third = limiter.run(shortTask);
      });
      releaseFirst();
      await sameEvent;
      await Promise.all([first, second, third]);
      assert.equal(peak, 1, 'calls in flight at once with limit 1');
    },
  );
});

describe('createInFlight', () => {
  test('settled() waits for everything tracked, failures included, and forgets what is done', async () => {
    const inFlight = createInFlight();
    let release!: () => void;
    const slow = new Promise<void>((resolve) => (release = resolve));
    inFlight.track(slow);
    inFlight.track(Promise.reject(new Error('a failed publish')));
    let settled = false;
    const waiting = inFlight.settled().then(() => (settled = true));
    await Promise.resolve();
    assert.equal(settled, false);
    release();
    await waiting;
    assert.equal(settled, true);
    await inFlight.settled();
  });
});
