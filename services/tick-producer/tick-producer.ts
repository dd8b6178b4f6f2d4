/**
 * Publishes one tick per enabled compute host per interval, at the host's fixed slot
 * (see tick-schedule.ts), while this process holds the leader lock. Several producers
 * can run: one publishes, the others wait on the lock; a standby that takes over
 * continues the schedule from the moment it became leader. The leader re-reads the host
 * list every hostRefreshMs (at most an interval) and sleeps between slots, whatever the
 * list holds: a host enabled meanwhile gets its current cycle's tick at once, a disabled
 * one no further tick. A new host's tick queue is declared before its first tick (and
 * re-declared after every reconnect). TICK_MAX_CYCLES counts intervals from the first
 * leadership on, not per term, and no host is ticked twice for one cycle.
 *
 * The leader also judges host liveness once per interval (liveness-evaluator.ts); every
 * producer, leader or not, exports the liveness gauges from the database.
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
import { runEvery } from '../../shared/run-every.ts';
import { defineService } from '../../shared/service-runner.ts';
import { createLivenessEvaluator } from './liveness-evaluator.ts';
import { refreshLivenessGauges } from './liveness-gauges.ts';
import { cycleAt, hostRefreshMs, planSlots, type ScheduledTick, slotOffsetMs } from './tick-schedule.ts';

export const tickProducer = defineService({
  name: 'tick-producer',
  env: tickProducerEnv,
  maxDatabaseConnections: () => 2,
  async start({ config, log, db, publisher, defer }) {
    // A standby notices a dead leader within a quarter interval (5 s at most).
    const lockCheckMs = Math.min(5_000, Math.ceil(config.tickIntervalMs / 4));
    const lock = createLeaderLock({ url: config.databaseUrl, tls: config.databaseTls, name: 'virtsync.tick-producer', retryMs: lockCheckMs, checkMs: lockCheckMs, log });
    defer(() => lock.release());
    const producer = startTickSchedule({ config, db, publisher, lock, log });
    defer(() => producer.stop());
    // Every producer, leader or standby, exports the liveness gauges: a leader change moves no series.
    const gauges = new AbortController();
    const refreshing = runEvery({
      everyMs: hostRefreshMs(config.tickIntervalMs),
      signal: gauges.signal,
      work: () => refreshLivenessGauges(db),
      onError: (err) => log.warn({ err: coerceError(err) }, 'liveness gauges not refreshed'),
    });
    defer(() => {
      gauges.abort();
      return refreshing;
    });
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

  /**
   * New hosts' tick queues, declared in one pipelined setup (and again after every reconnect).
   * Provisioned topology: `virtsync hosts add` declared them, and the producer may not.
   */
  const declareNewHosts = async (hosts: readonly string[]): Promise<void> => {
    if (config.busTopology === 'verify') return;
    const fresh = hosts.filter((host) => !declared.has(host));
    if (fresh.length === 0) return;
    await publisher.addSetup((channel: Channel) => Promise.all(fresh.map((host) => declareTickQueue(channel, host))));
    for (const host of fresh) declared.add(host);
  };

  /** Each host's newest cycle ticked by this process, across leadership terms: never two ticks for one cycle. */
  const tickedCycle = new Map<string, number>();
  /** When the first leadership began: the configured cycles count from here, whatever happens to the lock. */
  let runStartMs: number | undefined;
  let ticksSinceLog = 0;

  /** Sends a tick without waiting for its confirm, so one slow confirm never delays the next slot. */
  const publishTick = ({ host, cycle, dueAtMs }: ScheduledTick): void => {
    if ((tickedCycle.get(host) ?? Number.NEGATIVE_INFINITY) >= cycle) return;
    tickedCycle.set(host, cycle);
    ticksSinceLog++;
    const tick: Tick = { schemaVersion: SCHEMA_VERSION, tickId: randomUUID(), host, cycle, scheduledAt: new Date(dueAtMs).toISOString(), trigger: 'periodic' };
    unconfirmed.track(
      publishJson(publisher, Exchange.ticks, host, encodeMessage(tickSchema, tick), { messageId: tick.tickId, type: 'tick' }).then(
        () => ticksPublished.inc(),
        (err: unknown) => log.error({ err: coerceError(err), host, cycle }, 'tick not published, the host waits for its next slot'),
      ),
    );
  };

  /** The slot before `beforeMs` of each host enabled since the last look, if it lies in this run. */
  const lateSlots = (added: readonly string[], beforeMs: number, runFromMs: number): ScheduledTick[] =>
    added
      .map((host) => {
        const cycle = cycleAt(host, intervalMs, beforeMs - 1);
        return { host, cycle, dueAtMs: cycle * intervalMs + slotOffsetMs(host, intervalMs) };
      })
      .filter((slot) => slot.dueAtMs >= runFromMs);

  /**
   * One look at the host list, then the slots of [fromMs, toMs) as they fall due, then
   * sleep until toMs (also with no host at all). Returns the hosts it saw.
   */
  const publishStep = async (
    step: { fromMs: number; toMs: number; runFromMs: number; previous: ReadonlySet<string> | undefined },
    signal: AbortSignal,
  ): Promise<ReadonlySet<string>> => {
    const hosts = await listEnabledHosts(db);
    await declareNewHosts(hosts);
    const { previous } = step;
    if (previous !== undefined) {
      const added = hosts.filter((host) => !previous.has(host));
      const removed = previous.size - (hosts.length - added.length);
      if (added.length > 0 || removed > 0) log.info({ added: added.length, removed, hosts: hosts.length }, 'hosts to tick changed');
      for (const slot of lateSlots(added, step.fromMs, step.runFromMs)) publishTick(slot);
    }
    for (const slot of planSlots(hosts, intervalMs, step.fromMs, step.toMs)) {
      const waitMs = slot.dueAtMs - Date.now();
      if (waitMs > 0) await sleep(waitMs, undefined, { signal });
      if (!lock.isHeld()) return new Set(hosts);
      publishTick(slot);
    }
    const restMs = step.toMs - Date.now();
    if (restMs > 0) await sleep(restMs, undefined, { signal });
    return new Set(hosts);
  };

  /** Publishes the term's ticks until leadership is lost, the producer stops, or the configured cycles are done. */
  const tickTerm = async (signal: AbortSignal): Promise<'done' | 'lost'> => {
    runStartMs ??= Date.now();
    const runFromMs = runStartMs;
    const untilMs = config.maxCycles > 0 ? runFromMs + config.maxCycles * intervalMs : Number.POSITIVE_INFINITY;
    const refreshMs = hostRefreshMs(intervalMs);
    let cursorMs = Date.now();
    let loggedAtMs = cursorMs;
    let previous: ReadonlySet<string> | undefined;
    while (cursorMs < untilMs) {
      const toMs = Math.min(cursorMs + refreshMs, untilMs);
      try {
        previous = await publishStep({ fromMs: cursorMs, toMs, runFromMs, previous }, signal);
        cursorMs = toMs;
      } catch (err) {
        if (signal.aborted) return stopping.signal.aborted ? 'done' : 'lost';
        log.error({ err: coerceError(err) }, 'tick step failed, slots missed meanwhile are skipped');
        await sleep(Math.min(intervalMs, 5_000), undefined, { signal }).catch(() => undefined);
        cursorMs = Date.now();
      }
      if (!lock.isHeld()) return 'lost';
      if (cursorMs - loggedAtMs >= intervalMs || cursorMs >= untilMs) {
        log.info({ hosts: previous?.size ?? 0, ticks: ticksSinceLog, intervalMs }, 'tick interval published');
        ticksSinceLog = 0;
        loggedAtMs = cursorMs;
      }
    }
    return 'done';
  };

  const evaluator = createLivenessEvaluator({ db, publisher, settings: { intervalMs, ...config.liveness }, log });

  /** Acts as leader: ticks, and judges host liveness every interval, for as long as the term lasts. */
  const lead = async (): Promise<'done' | 'lost'> => {
    const termOver = new AbortController();
    const signal = AbortSignal.any([stopping.signal, lock.lost(), termOver.signal]);
    const judging = runEvery({
      everyMs: intervalMs,
      signal,
      work: () => evaluator.evaluate(),
      onError: (err) => log.error({ err: coerceError(err) }, 'host liveness evaluation failed, the next interval tries again'),
    });
    try {
      return await tickTerm(signal);
    } finally {
      termOver.abort();
      await judging;
    }
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
