/** Runs `fn` over `items` with at most `limit` calls in flight; results keep the input order. */
export async function mapWithConcurrency<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  if (!(limit >= 1)) throw new RangeError(`concurrency limit must be at least 1, got ${limit}`);
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/**
 * A counting semaphore: `run` waits for one of `limit` slots. A finishing task hands its
 * slot straight to the next waiter, so a caller arriving in between cannot take it too.
 */
export function createLimiter(limit: number): { run<R>(fn: () => Promise<R>): Promise<R>; active(): number } {
  let active = 0;
  const waiting: Array<() => void> = [];
  const release = (): void => {
    const next = waiting.shift();
    if (next === undefined) active--;
    else next();
  };
  return {
    async run(fn) {
      if (active >= limit) await new Promise<void>((resolve) => waiting.push(resolve));
      else active++;
      try {
        return await fn();
      } finally {
        release();
      }
    },
    active: () => active,
  };
}

/** Work started in the background that stop() must wait for. */
export interface InFlight {
  track(work: Promise<unknown>): void;
  /** Resolves once everything tracked so far has settled. */
  settled(): Promise<void>;
}

export function createInFlight(): InFlight {
  const pending = new Set<Promise<unknown>>();
  return {
    track(work) {
      const tracked = work.finally(() => pending.delete(tracked));
      pending.add(tracked);
    },
    async settled() {
      await Promise.allSettled(pending);
    },
  };
}
