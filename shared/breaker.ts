/**
 * A circuit breaker (opossum) around calls to one dependency: after repeated failures or
 * time-outs it opens and fails calls at once, so a sick hypervisor or database costs a
 * fast, logged refusal instead of a pile of hung calls; after `resetMs` it lets one call
 * through to test the water. State changes are logged; `state()` is for health checks.
 */
import CircuitBreaker from 'opossum';
import type { CommonConfig } from './config.ts';
import { isTransientDatabaseError } from './db/transient-error.ts';
import { CircuitOpenError, DependencyError, errorCode } from './errors.ts';
import type { Logger } from './logging.ts';
import { breakerState } from './metrics.ts';

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface Breaker {
  run<T>(task: () => Promise<T>): Promise<T>;
  state(): BreakerState;
}

export function createBreaker(options: {
  /** What it guards (`database`, `libvirt`): the metric's `breaker` label. */
  name: string;
  /** The host whose dependency it guards, for a per-host breaker: the metric's `host` label. */
  host?: string;
  dependency: DependencyError['dependency'];
  log: Logger;
  /** A call taking longer counts as failed (the call itself cannot be cancelled). */
  timeoutMs: number;
  resetMs: number;
  /** Failures that say nothing about the dependency's health (bad input) do not count. */
  isHealthy?: (err: unknown) => boolean;
}): Breaker {
  const log = options.log.child({ breaker: options.name });
  const label = options.host === undefined ? options.name : `${options.name} ${options.host}`;
  const breaker = new CircuitBreaker((task: () => Promise<unknown>) => task(), {
    timeout: options.timeoutMs,
    resetTimeout: options.resetMs,
    errorThresholdPercentage: 50,
    volumeThreshold: 3,
    rollingCountTimeout: 30_000,
    errorFilter: options.isHealthy,
  });
  const gauge = breakerState.labels({ breaker: options.name, host: options.host ?? '' });
  gauge.set(0);
  breaker.on('open', () => {
    gauge.set(2);
    log.warn({ resetMs: options.resetMs }, 'circuit opened: calls fail fast until it is tested again');
  });
  breaker.on('halfOpen', () => {
    gauge.set(1);
    log.info('circuit half-open: testing with one call');
  });
  breaker.on('close', () => {
    gauge.set(0);
    log.info('circuit closed: dependency healthy again');
  });

  return {
    async run<T>(task: () => Promise<T>): Promise<T> {
      try {
        return (await breaker.fire(task)) as T;
      } catch (err) {
        const code = errorCode(err);
        if (code === 'EOPENBREAKER') throw new CircuitOpenError(options.dependency, `${label}: circuit open after repeated failures`, err);
        if (code === 'ETIMEDOUT') throw new DependencyError(options.dependency, `${label}: no answer in ${options.timeoutMs} ms`, err);
        throw err;
      }
    },
    state: () => (breaker.opened ? 'open' : breaker.halfOpen ? 'half-open' : 'closed'),
  };
}

/** The breaker every service puts around its database calls; errors that are not the database's fault do not count. */
export function createDatabaseBreaker(config: CommonConfig, log: Logger): Breaker {
  return createBreaker({
    name: 'database',
    dependency: 'database',
    log,
    timeoutMs: config.databaseTimeoutMs,
    resetMs: config.breakerResetMs,
    isHealthy: (err) => !isTransientDatabaseError(err),
  });
}
