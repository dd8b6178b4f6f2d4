/**
 * Publishes one tick per enabled compute host per interval, at the host's fixed slot
 * (see tick-schedule.ts), while this process holds the leader lock. Several producers
 * can run: one publishes, the others wait on the lock; a standby that takes over
 * continues the schedule from the moment it became leader. The host list is re-read
 * every interval; a new host's tick queue is declared before its first tick (and
 * re-declared after every reconnect).
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Channel } from 'amqplib';
import type { Kysely } from 'kysely';
import { type Publisher, publishJson } from '../../shared/bus/publisher.ts';
import { declareTickQueue, Exchange } from '../../shared/bus/topology.ts';
import { createInFlight } from '../../shared/concurrency.ts';
import { type TickProducerConfig, tickProducerEnv } from '../../shared/config.ts';
import { listEnabledHosts } from '../../shared/db/compute-hosts.ts';
import type { Database } from '../../shared/db/database.ts';
import { createLeaderLock, type LeaderLock } from '../../shared/db/leader-lock.ts';
import { coerceError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import { isLeader, ticksPublished } from '../../shared/metrics.ts';
import { encodeMessage } from '../../shared/messages/codec.ts';
import { SCHEMA_VERSION } from '../../shared/messages/fields.ts';
import { type Tick, tickSchema } from '../../shared/messages/tick.ts';
import { defineService } from '../../shared/service-runner.ts';
import { planSlots, type ScheduledTick } from './tick-schedule.ts';

export const tickProducer = defineService({
  name: 'tick-producer',
  env: tickProducerEnv,
  maxDatabaseConnections: () => 2,
  async start({ config, log, db, publisher, defer }) {
    // A standby notices a dead leader within a quarter interval (5 s at most).
    const lockCheckMs = Math.min(5_000, Math.ceil(config.tickIntervalMs / 4));
    const lock = createLeaderLock({ url: config.databaseUrl, name: 'virtsync.tick-producer', retryMs: lockCheckMs, checkMs: lockCheckMs, log });
    defer(() => lock.release());
    const producer = startTickSchedule({ config, db, publisher, lock, log });
    defer(() => producer.stop());
    // With TICK_MAX_CYCLES set, the producer is done after its last cycle and the process stops.
    const finished = producer.finished.then((outcome) => {
      if (outcome === 'completed') log.info({ cycles: config.maxCycles }, 'configured cycles done');
    });
    return { finished };
  },
});

interface TickSchedule {
  /** Resolves `completed` when the configured number of cycles is done (never, for 0), `stopped` when stopped. */
  finished: Promise<'completed' | 'stopped'>;
  stop(): Promise<void>;
}

function startTickSchedule(deps: {
  config: TickProducerConfig;
  db: Kysely<Database>;
  publisher: Publisher;
  lock: LeaderLock;
  log: Logger;
}): TickSchedule {
  const { config, db, publisher, lock, log } = deps;
  const intervalMs = config.tickIntervalMs;
  const declared = new Set<string>();
  const stopping = new AbortController();
  const unconfirmed = createInFlight();

  /** New hosts' tick queues, declared in one pipelined setup (and again after every reconnect). */
  const declareNewHosts = async (hosts: readonly string[]): Promise<void> => {
    const fresh = hosts.filter((host) => !declared.has(host));
    if (fresh.length === 0) return;
    await publisher.addSetup((channel: Channel) => Promise.all(fresh.map((host) => declareTickQueue(channel, host))));
    for (const host of fresh) declared.add(host);
  };

  /** Sends a tick without waiting for its confirm, so one slow confirm never delays the next slot. */
  const publishTick = ({ host, cycle, dueAtMs }: ScheduledTick): void => {
    const tick: Tick = { schemaVersion: SCHEMA_VERSION, tickId: randomUUID(), host, cycle, scheduledAt: new Date(dueAtMs).toISOString(), trigger: 'periodic' };
    unconfirmed.track(
      publishJson(publisher, Exchange.ticks, host, encodeMessage(tickSchema, tick), { messageId: tick.tickId, type: 'tick' }).then(
        () => ticksPublished.inc(),
        (err: unknown) => log.error({ err: coerceError(err), host, cycle }, 'tick not published, the host waits for its next slot'),
      ),
    );
  };

  /** Publishes the slots of [fromMs, toMs) as they fall due; stops early if leadership is lost. */
  const publishWindow = async (fromMs: number, toMs: number, signal: AbortSignal): Promise<void> => {
    const hosts = await listEnabledHosts(db);
    await declareNewHosts(hosts);
    const slots = planSlots(hosts, intervalMs, fromMs, toMs);
    for (const slot of slots) {
      const waitMs = slot.dueAtMs - Date.now();
      if (waitMs > 0) await sleep(waitMs, undefined, { signal });
      if (!lock.isHeld()) return;
      publishTick(slot);
    }
    log.info({ hosts: hosts.length, slots: slots.length, intervalMs }, 'tick interval published');
  };

  /** Acts as leader until leadership is lost, the producer stops, or the configured cycles are done. */
  const lead = async (): Promise<'done' | 'lost'> => {
    const leaderSinceMs = Date.now();
    const untilMs = config.maxCycles > 0 ? leaderSinceMs + config.maxCycles * intervalMs : Number.POSITIVE_INFINITY;
    const signal = AbortSignal.any([stopping.signal, lock.lost()]);
    let cursorMs = leaderSinceMs;
    while (cursorMs < untilMs) {
      const toMs = Math.min(cursorMs + intervalMs, untilMs);
      try {
        await publishWindow(cursorMs, toMs, signal);
        cursorMs = toMs;
      } catch (err) {
        if (signal.aborted) return stopping.signal.aborted ? 'done' : 'lost';
        log.error({ err: coerceError(err) }, 'tick interval failed, slots missed meanwhile are skipped');
        await sleep(Math.min(intervalMs, 5_000), undefined, { signal }).catch(() => undefined);
        cursorMs = Date.now();
      }
      if (!lock.isHeld()) return 'lost';
    }
    return 'done';
  };

  const finished = (async (): Promise<'completed' | 'stopped'> => {
    while (!stopping.signal.aborted) {
      try {
        await lock.acquire(stopping.signal);
      } catch {
        return 'stopped'; // while standing by
      }
      log.info({ intervalMs, maxCycles: config.maxCycles }, 'leading: publishing ticks');
      isLeader.set(1);
      const outcome = await lead();
      isLeader.set(0);
      if (outcome === 'done') return stopping.signal.aborted ? 'stopped' : 'completed';
      log.warn('no longer the leader, standing by');
    }
    return 'stopped';
  })();

  return {
    finished,
    async stop() {
      stopping.abort();
      await finished;
      await unconfirmed.settled();
    },
  };
}
