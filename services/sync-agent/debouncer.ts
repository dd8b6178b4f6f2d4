/**
 * Trailing debounce per key: `fire(key)` runs once, `delayMs` after the last `push(key)`.
 * A reboot emits Stopped and Started within a second; debouncing means we observe the
 * domain once it has settled instead of publishing SHUTOFF in between.
 */
export interface Debouncer {
  push(key: string): void;
  /** Cancels everything pending. */
  clear(): void;
  pending(): number;
}

export function createDebouncer(delayMs: number, fire: (key: string) => void): Debouncer {
  const timers = new Map<string, NodeJS.Timeout>();
  return {
    push(key) {
      clearTimeout(timers.get(key));
      timers.set(
        key,
        setTimeout(() => {
          timers.delete(key);
          fire(key);
        }, delayMs),
      );
    },
    clear() {
      for (const timer of timers.values()) clearTimeout(timer);
      timers.clear();
    },
    pending: () => timers.size,
  };
}
