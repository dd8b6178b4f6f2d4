/**
 * Collects items into batches of at most `maxSize`, flushing a partial batch after
 * `lingerMs`. Flushes run one at a time, in order; items arriving meanwhile form the next batch.
 */
export interface Batcher<T> {
  add(item: T): void;
  /** Flushes what is pending and waits for every flush to finish. */
  drain(): Promise<void>;
}

export function createBatcher<T>(options: {
  maxSize: number;
  lingerMs: number;
  flush: (items: T[]) => Promise<void>;
}): Batcher<T> {
  let pending: T[] = [];
  let timer: NodeJS.Timeout | undefined;
  let chain: Promise<void> = Promise.resolve();

  const cut = (): void => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    if (pending.length === 0) return;
    const batch = pending;
    pending = [];
    // flush reports its own failures; the chain must survive them.
    chain = chain.then(() => options.flush(batch)).catch(() => undefined);
  };

  return {
    add(item) {
      pending.push(item);
      if (pending.length >= options.maxSize) cut();
      else timer ??= setTimeout(cut, options.lingerMs);
    },
    async drain() {
      cut();
      await chain;
    },
  };
}
