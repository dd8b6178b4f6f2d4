/** Retries `fn` with capped exponential backoff while `shouldRetry(err)` holds and `signal` is not aborted. */
export async function retryWithBackoff<R>(
  fn: () => Promise<R>,
  options: {
    shouldRetry: (err: unknown) => boolean;
    onRetry: (err: unknown, attempt: number, delayMs: number) => void;
    signal: AbortSignal;
    initialDelayMs?: number;
    maxDelayMs?: number;
  },
): Promise<R> {
  const initial = options.initialDelayMs ?? 200;
  const max = options.maxDelayMs ?? 5_000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (options.signal.aborted || !options.shouldRetry(err)) throw err;
      const delayMs = Math.min(max, initial * 2 ** (attempt - 1));
      options.onRetry(err, attempt, delayMs);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}
