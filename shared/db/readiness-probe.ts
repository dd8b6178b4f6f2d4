/**
 * /readyz's view of the database: a real, cheap query (`select 1` through the service's
 * own pool) run in the background every `intervalMs`, its outcome cached, so a readiness
 * probe never waits on the database and never piles queries onto a sick one.
 */
import { type Kysely, sql } from 'kysely';
import { coerceError } from '../errors.ts';
import type { ReadinessCheck } from '../http-server.ts';
import type { Database } from './database.ts';
import { describeUnavailability } from './transient-error.ts';

export interface DatabaseProbe {
  health(): ReadinessCheck;
  stop(): void;
}

export function startDatabaseProbe(db: Kysely<Database>, options: { intervalMs: number; timeoutMs: number }): DatabaseProbe {
  let health: ReadinessCheck = { ok: false, reason: 'not checked yet' };
  let running = false;

  const check = async (): Promise<void> => {
    if (running) return;
    running = true;
    const timeout = AbortSignal.timeout(options.timeoutMs);
    try {
      await Promise.race([
        sql`select 1`.execute(db),
        new Promise((_resolve, reject) => timeout.addEventListener('abort', () => reject(new Error(`no answer within ${options.timeoutMs} ms`)), { once: true })),
      ]);
      health = { ok: true };
    } catch (err) {
      health = { ok: false, reason: describeUnavailability(coerceError(err)) };
    } finally {
      running = false;
    }
  };

  void check();
  const timer = setInterval(() => void check(), options.intervalMs);
  timer.unref();
  return {
    health: () => health,
    stop: () => clearInterval(timer),
  };
}
