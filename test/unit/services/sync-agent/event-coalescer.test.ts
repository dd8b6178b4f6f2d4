/**
 * The event coalescer: a lone domain takes the cheap path at once; domains that settle
 * while their host is being observed wait and are served together (one bulk call from
 * BULK_FROM on); a host never has two observations in flight; hosts are bounded; a failure
 * is reported with its domains and the next ones are still served.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BULK_FROM, createEventCoalescer } from '../../../../services/sync-agent/event-coalescer.ts';
import { createInFlight } from '../../../../shared/concurrency.ts';

function gate(): { promise: Promise<void>; open(): void } {
  let open = (): void => undefined;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

function recorder(options: { hostConcurrency?: number; failMany?: boolean } = {}) {
  const calls: Array<{ host: string; names: string[]; way: 'one' | 'many' }> = [];
  const errors: Array<{ host: string; names: readonly string[] }> = [];
  const gates: Array<ReturnType<typeof gate>> = [];
  let inFlightNow = 0;
  let inFlightMax = 0;
  const perHost = new Map<string, number>();
  const run = async (host: string, names: string[], way: 'one' | 'many'): Promise<void> => {
    calls.push({ host, names, way });
    inFlightNow++;
    inFlightMax = Math.max(inFlightMax, inFlightNow);
    perHost.set(host, (perHost.get(host) ?? 0) + 1);
    const g = gate();
    gates.push(g);
    await g.promise;
    inFlightNow--;
    perHost.set(host, (perHost.get(host) ?? 0) - 1);
    if (way === 'many' && options.failMany === true) throw new Error('libvirt went away');
  };
  const inFlight = createInFlight();
  const coalescer = createEventCoalescer({
    syncOne: (host, name) => run(host, [name], 'one'),
    syncMany: (host, names) => run(host, [...names], 'many'),
    onError: (host, names) => errors.push({ host, names }),
    track: (work) => inFlight.track(work),
    hostConcurrency: options.hostConcurrency ?? 4,
    perHostConcurrency: 2,
  });
  /** Opens every gate until nothing is in flight any more. */
  const drain = async (): Promise<void> => {
    for (;;) {
      await new Promise((resolve) => setImmediate(resolve));
      const open = gates.splice(0);
      if (open.length === 0 && inFlightNow === 0) break;
      for (const g of open) g.open();
    }
    await inFlight.settled();
  };
  return { coalescer, calls, errors, drain, inFlightMax: () => inFlightMax, perHost };
}

describe('createEventCoalescer', () => {
  test('a lone domain is read by name; the burst behind it is served by one bulk read', async () => {
    const r = recorder();
    r.coalescer.push('h1', 'd0');
    const burst = Array.from({ length: 100 }, (_, i) => `d${i + 1}`);
    for (const name of burst) r.coalescer.push('h1', name);
    r.coalescer.push('h1', 'd5'); // settled twice while waiting: served once
    await r.drain();
    assert.deepEqual(r.calls, [
      { host: 'h1', names: ['d0'], way: 'one' },
      { host: 'h1', names: burst, way: 'many' },
    ]);
  });

  test(`fewer than ${BULK_FROM} waiting domains are read by name each, at most perHostConcurrency at once`, async () => {
    const r = recorder();
    r.coalescer.push('h1', 'a');
    for (const name of ['b', 'c', 'd']) r.coalescer.push('h1', name);
    await r.drain();
    assert.deepEqual(
      r.calls.map((c) => [c.way, c.names.join()]),
      [['one', 'a'], ['one', 'b'], ['one', 'c'], ['one', 'd']],
    );
    assert.ok(r.inFlightMax() <= 2, `in flight at most 2, saw ${r.inFlightMax()}`);
  });

  test('hosts are served side by side, at most hostConcurrency at once', async () => {
    const r = recorder({ hostConcurrency: 2 });
    for (const host of ['h1', 'h2', 'h3', 'h4']) r.coalescer.push(host, 'x');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(r.calls.length, 2, 'two hosts start, two wait');
    await r.drain();
    assert.deepEqual(r.calls.map((c) => c.host).sort(), ['h1', 'h2', 'h3', 'h4']);
    assert.equal(r.inFlightMax(), 2);
  });

  test('a failed bulk read is reported with its domains; later ones are still served', async () => {
    const r = recorder({ failMany: true });
    r.coalescer.push('h1', 'first');
    const burst = Array.from({ length: BULK_FROM }, (_, i) => `b${i}`);
    for (const name of burst) r.coalescer.push('h1', name);
    await r.drain();
    assert.deepEqual(r.errors, [{ host: 'h1', names: burst }]);
    r.coalescer.push('h1', 'later');
    await r.drain();
    assert.deepEqual(r.calls.at(-1), { host: 'h1', names: ['later'], way: 'one' });
  });

  test('clear() forgets what waits', async () => {
    const r = recorder();
    r.coalescer.push('h1', 'a');
    r.coalescer.push('h1', 'b');
    assert.equal(r.coalescer.pending(), 1);
    r.coalescer.clear();
    assert.equal(r.coalescer.pending(), 0);
    await r.drain();
    assert.deepEqual(r.calls.map((c) => c.names.join()), ['a']);
  });
});
