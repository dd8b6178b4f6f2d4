import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Runs `work` now and then every `everyMs` (from the end of one run to the start of the
 * next) until `signal` aborts; resolves then. A failed run is handed to `onError` and the
 * next one runs on time: a loop for periodic upkeep that must not die of one bad run.
 */
export async function runEvery(options: {
  everyMs: number;
  signal: AbortSignal;
  work: () => Promise<void>;
  onError: (err: unknown) => void;
}): Promise<void> {
  while (!options.signal.aborted) {
    try {
      await options.work();
    } catch (err) {
      if (options.signal.aborted) return;
      options.onError(err);
    }
    try {
      await sleep(options.everyMs, undefined, { signal: options.signal });
    } catch {
      return; // aborted while waiting
    }
  }
}
