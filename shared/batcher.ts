/**
 * Collects items into batches of `maxSize`, counted by weight (an item that stands for
 * several units counts as that many), flushing a partial batch after `lingerMs`. A batch
 * is cut as soon as it weighs `maxSize` or more, so one heavy item can take it past that.
 *
 * Up to `maxInFlight` flushes run at once (1 by default). Items that share a key (`keysOf`)
 * are never in flight at once: a batch is cut without any item sharing a key with a batch in
 * flight, or with an item held back before it (shared/batch-cut.ts), so the items of one key
 * are flushed one batch after the other, in the order they arrived in their lane. Without
 * `keysOf` every item shares one key: one flush at a time, in order. Items of one lane
 * otherwise keep their arrival order.
 *
 * Items come in two lanes. Whenever a flush may start, the batch is cut from the `urgent`
 * lane if it holds an item free to go (at once, without the linger), else from the
 * `standard` lane, which also holds back its items that share a key with a pending urgent
 * one. Standard batches take at most `maxInFlight` slots, and one slot more is kept for the
 * urgent lane: an urgent item never waits for standard flushes, only for those holding its
 * keys and for urgent items ahead of it. A batch holds items of one lane.
 */
import { type Cut, cutBatch, type PendingItem } from './batch-cut.ts';

export type BatchLane = 'urgent' | 'standard';

export interface Batcher<T> {
  add(item: T, weight?: number, lane?: BatchLane): void;
  /** Flushes what is pending and waits for every flush to finish. */
  drain(): Promise<void>;
}

interface Pending<T> extends PendingItem {
  item: T;
}

/** The key every item has when the caller gives no keysOf: every flush conflicts with every other. */
const ONE_KEY = [''];

export function createBatcher<T>(options: {
  maxSize: number;
  lingerMs: number;
  flush: (items: T[]) => Promise<void>;
  /** Standard flushes that may run at once (default 1); urgent ones have one slot more. */
  maxInFlight?: number;
  /** What an item must not be in flight beside (default: everything). */
  keysOf?: (item: T) => readonly string[];
}): Batcher<T> {
  const maxInFlight = options.maxInFlight ?? 1;
  if (!Number.isInteger(maxInFlight) || maxInFlight < 1) throw new RangeError(`maxInFlight must be a positive integer, got ${maxInFlight}`);
  const lanes: Record<BatchLane, Array<Pending<T>>> = { urgent: [], standard: [] };
  let standardWeight = 0;
  let timer: NodeJS.Timeout | undefined;
  /** The standard lane's oldest item has waited lingerMs: a partial batch may go. */
  let lingered = false;
  /** Drains waiting: partial batches go at once. */
  let draining = 0;
  /** Flushes in flight, all lanes; of them, standard ones (urgent ones use the rest, one slot more). */
  let inFlight = 0;
  let standardInFlight = 0;
  /** Keys of the batches in flight; those batches share none, so each key is held by one. */
  const busy = new Set<string>();
  const idle: Array<() => void> = [];

  const mayGoPartial = (): boolean => lingered || draining > 0;

  /** Removes the cut's items from `lane` and returns them. */
  const take = (lane: BatchLane, cut: Cut): Array<Pending<T>> => {
    const queue = lanes[lane];
    const taken = new Set(cut.taken);
    lanes[lane] = queue.filter((_, index) => !taken.has(index));
    if (lane === 'standard') standardWeight -= cut.weight;
    return cut.taken.flatMap((index) => queue[index] ?? []);
  };

  const next = (): { lane: BatchLane; batch: Array<Pending<T>> } | undefined => {
    const urgent = cutBatch(lanes.urgent, options.maxSize, (key) => busy.has(key));
    if (urgent.taken.length > 0) return { lane: 'urgent', batch: take('urgent', urgent) };
    if (lanes.standard.length === 0 || standardInFlight >= maxInFlight) return undefined;
    // Cheap test first: the lane as a whole is too light, so is any cut of it.
    if (standardWeight < options.maxSize && !mayGoPartial()) return undefined;
    // A pending urgent item goes before standard items of its keys, and never waits for them.
    const urgentKeys = new Set(lanes.urgent.flatMap((pending) => pending.keys));
    const standard = cutBatch(lanes.standard, options.maxSize, (key) => busy.has(key) || urgentKeys.has(key));
    if (standard.taken.length === 0 || (standard.weight < options.maxSize && !mayGoPartial())) return undefined;
    const batch = take('standard', standard);
    lingered = false;
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    // What stays behind starts its own linger.
    if (lanes.standard.length > 0) timer = setTimeout(onLinger, options.lingerMs);
    return { lane: 'standard', batch };
  };

  const start = (lane: BatchLane, batch: Array<Pending<T>>): void => {
    const keys = new Set(batch.flatMap((pending) => pending.keys));
    for (const key of keys) busy.add(key);
    inFlight++;
    if (lane === 'standard') standardInFlight++;
    // flush reports its own failures (a throw before its promise included); later batches must still go.
    new Promise<void>((resolve) => resolve(options.flush(batch.map((pending) => pending.item))))
      .catch(() => undefined)
      .finally(() => {
        for (const key of keys) busy.delete(key);
        inFlight--;
        if (lane === 'standard') standardInFlight--;
        pump();
      });
  };

  const pump = (): void => {
    while (inFlight < maxInFlight + 1) {
      const cut = next();
      if (cut === undefined) break;
      start(cut.lane, cut.batch);
    }
    if (inFlight === 0 && lanes.urgent.length === 0 && lanes.standard.length === 0) for (const resolve of idle.splice(0)) resolve();
  };

  const onLinger = (): void => {
    timer = undefined;
    lingered = true;
    pump();
  };

  return {
    add(item, weight = 1, lane = 'standard') {
      lanes[lane].push({ item, weight, keys: options.keysOf?.(item) ?? ONE_KEY });
      if (lane === 'standard') {
        standardWeight += weight;
        timer ??= setTimeout(onLinger, options.lingerMs);
      }
      pump();
    },
    async drain() {
      draining++;
      try {
        await new Promise<void>((resolve) => {
          idle.push(resolve);
          pump();
        });
      } finally {
        draining--;
      }
    },
  };
}
