/**
 * Serves the domains whose lifecycle events have settled, per host, so that a burst costs
 * one bulk read of the host instead of one lookup per domain. A host has at most one
 * observation in flight; the domains that settle meanwhile wait and are served together
 * by the next one. A few domains take the cheap path (one lookup by name each, at most
 * `perHostConcurrency` at once); from BULK_FROM domains on, one bulk read serves them all.
 * Hosts are served at most `hostConcurrency` at once.
 */
import { createLimiter, mapWithConcurrency } from '../../shared/concurrency.ts';

/**
 * A bulk read of a 1,000-domain host costs about as much agent CPU as ten lookups by name
 * (docs/performance.md); from this many domains on, the bulk read is the cheaper way.
 */
export const BULK_FROM = 8;

export interface EventCoalescer {
  push(host: string, domainName: string): void;
  /** Domains waiting, all hosts. */
  pending(): number;
  /** Forgets what waits; what is in flight finishes. */
  clear(): void;
}

export function createEventCoalescer(deps: {
  syncOne(host: string, domainName: string): Promise<unknown>;
  syncMany(host: string, domainNames: readonly string[]): Promise<unknown>;
  /** Called with what failed; the next tick covers those domains. */
  onError(host: string, domainNames: readonly string[], err: unknown): void;
  /** Background work that shutdown must wait for. */
  track(work: Promise<unknown>): void;
  hostConcurrency: number;
  perHostConcurrency: number;
}): EventCoalescer {
  const waiting = new Map<string, Set<string>>();
  const serving = new Set<string>();
  const limiter = createLimiter(deps.hostConcurrency);

  const serve = async (host: string): Promise<void> => {
    for (;;) {
      const names = [...(waiting.get(host) ?? [])];
      waiting.delete(host);
      if (names.length === 0) break;
      await limiter.run(async () => {
        if (names.length >= BULK_FROM) {
          await deps.syncMany(host, names).catch((err: unknown) => deps.onError(host, names, err));
          return;
        }
        await mapWithConcurrency(names, deps.perHostConcurrency, (name) => deps.syncOne(host, name).catch((err: unknown) => deps.onError(host, [name], err)));
      });
    }
    serving.delete(host);
  };

  return {
    push(host, domainName) {
      const names = waiting.get(host) ?? new Set<string>();
      names.add(domainName);
      waiting.set(host, names);
      if (serving.has(host)) return;
      serving.add(host);
      deps.track(serve(host));
    },
    pending: () => [...waiting.values()].reduce((sum, names) => sum + names.size, 0),
    clear: () => waiting.clear(),
  };
}
