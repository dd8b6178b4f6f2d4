/**
 * Collects items into batches of `maxSize`, counted by weight (an item that stands for
 * several units counts as that many), flushing a partial batch after `lingerMs`. A batch
 * is cut as soon as it weighs `maxSize` or more, so one heavy item can take it past that.
 * Flushes run one at a time, in order; items arriving meanwhile form the next batch.
 *
 * Items come in two lanes. A batch is cut only when the previous flush is done, from the
 * `urgent` lane if it holds anything (at once, without the linger), else from the
 * `standard` lane: an urgent item waits for at most the one flush in flight, however much
 * standard work is pending. A batch holds items of one lane.
 */
export type BatchLane = 'urgent' | 'standard';

export interface Batcher<T> {
  add(item: T, weight?: number, lane?: BatchLane): void;
  /** Flushes what is pending and waits for every flush to finish. */
  drain(): Promise<void>;
}

interface Weighed<T> {
  item: T;
  weight: number;
}

export function createBatcher<T>(options: {
  maxSize: number;
  lingerMs: number;
  flush: (items: T[]) => Promise<void>;
}): Batcher<T> {
  const lanes: Record<BatchLane, Array<Weighed<T>>> = { urgent: [], standard: [] };
  let standardWeight = 0;
  let timer: NodeJS.Timeout | undefined;
  /** The standard lane's oldest item has waited lingerMs: a partial batch may go. */
  let lingered = false;
  /** Drains waiting: partial batches go at once. */
  let draining = 0;
  let flushing = false;
  const idle: Array<() => void> = [];

  /** The next batch of `lane`: items in order until they weigh maxSize, or until the lane is empty. */
  const take = (lane: BatchLane): T[] => {
    const queue = lanes[lane];
    let weight = 0;
    let count = 0;
    while (count < queue.length && weight < options.maxSize) weight += queue[count++]?.weight ?? 0;
    if (lane === 'standard') standardWeight -= weight;
    return queue.splice(0, count).map(({ item }) => item);
  };

  const next = (): T[] | undefined => {
    if (lanes.urgent.length > 0) return take('urgent');
    if (lanes.standard.length === 0) return undefined;
    if (standardWeight < options.maxSize && !lingered && draining === 0) return undefined;
    const batch = take('standard');
    lingered = false;
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    // What stays behind starts its own linger.
    if (lanes.standard.length > 0) timer = setTimeout(onLinger, options.lingerMs);
    return batch;
  };

  const pump = (): void => {
    if (flushing) return;
    const batch = next();
    if (batch === undefined) {
      if (lanes.urgent.length === 0 && lanes.standard.length === 0) for (const resolve of idle.splice(0)) resolve();
      return;
    }
    flushing = true;
    // flush reports its own failures (a throw before its promise included); later batches must still go.
    new Promise<void>((resolve) => resolve(options.flush(batch)))
      .catch(() => undefined)
      .finally(() => {
        flushing = false;
        pump();
      });
  };

  const onLinger = (): void => {
    timer = undefined;
    lingered = true;
    pump();
  };

  return {
    add(item, weight = 1, lane = 'standard') {
      lanes[lane].push({ item, weight });
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
