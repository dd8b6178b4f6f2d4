/**
 * Capped exponential backoff with jitter. Jitter keeps a fleet of consumers that lost the
 * same dependency at the same moment from retrying in lockstep; the cap keeps a long outage
 * from stretching the wait after recovery.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface Backoff {
  initialDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_BACKOFF: Backoff = { initialDelayMs: 200, maxDelayMs: 5_000 };

/**
 * The wait before retry `attempt` (1-based): "equal jitter", a uniformly random point in
 * the upper half of the capped exponential step, so it never collapses to zero.
 */
export function backoffDelayMs(attempt: number, backoff: Backoff = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  const step = Math.min(backoff.maxDelayMs, backoff.initialDelayMs * 2 ** Math.min(attempt - 1, 30));
  return Math.round(step / 2 + (random() * step) / 2);
}

/** Retries `fn` with backoff while `shouldRetry(err)` holds and `signal` is not aborted (an abort ends the wait at once). */
export async function retryWithBackoff<R>(
  fn: () => Promise<R>,
  options: {
    shouldRetry: (err: unknown) => boolean;
    onRetry: (err: unknown, attempt: number, delayMs: number) => void;
    signal: AbortSignal;
    backoff?: Backoff;
  },
): Promise<R> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (options.signal.aborted || !options.shouldRetry(err)) throw err;
      const delayMs = backoffDelayMs(attempt, options.backoff);
      options.onRetry(err, attempt, delayMs);
      await sleep(delayMs, undefined, { signal: options.signal }).catch(() => undefined);
    }
  }
}
