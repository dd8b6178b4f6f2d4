/**
 * Collects items into batches of `maxSize`, counted by weight (an item that stands for
 * several units counts as that many), flushing a partial batch after `lingerMs`. A batch
 * is cut as soon as it weighs `maxSize` or more, so one heavy item can take it past that.
 * Flushes run one at a time, in order; items arriving meanwhile form the next batch.
 */
export interface Batcher<T> {
  add(item: T, weight?: number): void;
  /** Flushes what is pending and waits for every flush to finish. */
  drain(): Promise<void>;
}

export function createBatcher<T>(options: {
  maxSize: number;
  lingerMs: number;
  flush: (items: T[]) => Promise<void>;
}): Batcher<T> {
  let pending: T[] = [];
  let pendingWeight = 0;
  let timer: NodeJS.Timeout | undefined;
  let chain: Promise<void> = Promise.resolve();

  const cut = (): void => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    if (pending.length === 0) return;
    const batch = pending;
    pending = [];
    pendingWeight = 0;
    // flush reports its own failures; the chain must survive them.
    chain = chain.then(() => options.flush(batch)).catch(() => undefined);
  };

  return {
    add(item, weight = 1) {
      pending.push(item);
      pendingWeight += weight;
      if (pendingWeight >= options.maxSize) cut();
      else timer ??= setTimeout(cut, options.lingerMs);
    },
    async drain() {
      cut();
      await chain;
    },
  };
}
