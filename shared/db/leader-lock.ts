/**
 * Leader election on a PostgreSQL session advisory lock, held on a connection of its own:
 * whoever holds it is the leader; if the leader dies or its connection breaks, the server
 * releases the lock and a standby's next try gets it. The holder checks its connection
 * every `checkMs`, and a check that gets no answer within `checkMs` (at least 2 s) counts as
 * failed: a leader whose connection went silent (half-open: no FIN, no RST) stops acting
 * within a check and its time limit instead of hanging on a query that never returns. Server-side TCP keepalive on the
 * lock's session lets PostgreSQL notice a vanished leader and free the lock for a standby.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { TlsFiles } from '../config.ts';
import type { Logger } from '../logging.ts';
import { connectionSettings } from './connect.ts';

export interface LeaderLock {
  /** Resolves once this process is the leader; rejects if `signal` aborts first. */
  acquire(signal: AbortSignal): Promise<void>;
  /** Still the leader (as of the last check, at most `checkMs` ago)? */
  isHeld(): boolean;
  /** Aborted when leadership is lost; a new one is made on each acquire. */
  lost(): AbortSignal;
  release(): Promise<void>;
}

export function createLeaderLock(options: { url: string; tls?: TlsFiles | undefined; name: string; retryMs: number; checkMs: number; log: Logger }): LeaderLock {
  const log = options.log.child({ component: 'leader-lock', lock: options.name });
  let client: pg.Client | undefined;
  let held = false;
  let lostController = new AbortController();
  let checker: NodeJS.Timeout | undefined;

  const drop = (reason: string, err?: unknown): void => {
    const wasHeld = held;
    held = false;
    clearInterval(checker);
    const current = client;
    client = undefined;
    current?.end().catch(() => undefined);
    if (wasHeld) {
      log.warn({ reason, err }, 'leadership lost');
      lostController.abort();
    }
  };

  const tryOnce = async (): Promise<boolean> => {
    const candidate = new pg.Client({
      ...connectionSettings(options.url, options.tls),
      application_name: `virtsync ${options.name}`,
      connectionTimeoutMillis: Math.max(options.checkMs, 2_000),
      query_timeout: Math.max(options.checkMs, 2_000),
      keepAlive: true,
      keepAliveInitialDelayMillis: 5_000,
      // The server drops a session whose client went away without a word after ~25 s (default: 2 h).
      options: '-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3',
    });
    candidate.on('error', (err) => drop('lock connection failed', err));
    await candidate.connect();
    const { rows } = await candidate.query<{ locked: boolean }>('select pg_try_advisory_lock(hashtext($1)) as locked', [options.name]);
    if (rows[0]?.locked !== true) {
      await candidate.end();
      return false;
    }
    client = candidate;
    return true;
  };

  return {
    async acquire(signal) {
      for (;;) {
        signal.throwIfAborted();
        try {
          if (await tryOnce()) break;
        } catch (err) {
          log.warn({ err }, 'could not try the leader lock, trying again');
        }
        await sleep(options.retryMs, undefined, { signal });
      }
      held = true;
      lostController = new AbortController();
      let checking = false;
      checker = setInterval(() => {
        // A check still waiting (up to query_timeout) is not doubled up.
        if (client === undefined || checking) return;
        checking = true;
        client
          .query('select 1')
          .catch((err: unknown) => drop('lock connection check failed', err))
          .finally(() => {
            checking = false;
          });
      }, options.checkMs);
      log.info('became leader');
    },
    isHeld: () => held,
    lost: () => lostController.signal,
    async release() {
      const current = client;
      held = false;
      clearInterval(checker);
      client = undefined;
      if (current === undefined) return;
      try {
        await current.query('select pg_advisory_unlock(hashtext($1))', [options.name]);
      } finally {
        // A connection gone silent never confirms the close: do not let it hold up shutdown.
        await Promise.race([current.end().catch(() => undefined), sleep(options.checkMs)]);
      }
    },
  };
}
