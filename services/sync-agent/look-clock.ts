/**
 * Orders an agent's looks without a clock: an epoch the database hands this process (a
 * sequence, so a restarted agent's epoch is higher than any before it) and a count of
 * hypervisor answers within it. `next()` is called as an answer arrives, so the order is
 * the order in which the hypervisor answered.
 */
import { sql } from 'kysely';
import type { Breaker } from '../../shared/breaker.ts';
import type { Db } from '../../shared/db/database.ts';
import type { LookOrder } from '../../shared/sync-rules.ts';

export interface LookClock {
  /** The epoch, fetched once (again after a failure); call before asking the hypervisor. */
  epoch(): Promise<number>;
  /** The next place in this agent's order; only after `epoch()` has resolved. */
  next(epoch: number): LookOrder;
}

export function createLookClock(db: Db, dbBreaker: Breaker): LookClock {
  let epoch: Promise<number> | undefined;
  let seq = 0;
  return {
    epoch() {
      epoch ??= dbBreaker
        .run(() => sql<{ epoch: string }>`select nextval('virtsync_agent_epoch') as epoch`.execute(db))
        .then(({ rows }) => Number(rows[0]?.epoch))
        .catch((err: unknown) => {
          epoch = undefined;
          throw err;
        });
      return epoch;
    },
    next: (current) => ({ epoch: current, seq: ++seq }),
  };
}
