/**
 * Publishes one tick per enabled compute host per interval, spread over the interval.
 * The host list is re-read at the start of every cycle; a new host's tick queue is
 * declared before its first tick (and re-declared after every reconnect).
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Kysely } from 'kysely';
import type { BusConnection } from '../../shared/bus/connect.ts';
import { createPublisher, publishJson } from '../../shared/bus/publisher.ts';
import { declareCoreTopology, declareTickQueue, Exchange } from '../../shared/bus/topology.ts';
import type { TickProducerConfig } from '../../shared/config.ts';
import { listEnabledHosts } from '../../shared/db/compute-hosts.ts';
import type { Database } from '../../shared/db/database.ts';
import { coerceError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import { encodeMessage } from '../../shared/messages/codec.ts';
import { SCHEMA_VERSION } from '../../shared/messages/fields.ts';
import { type Tick, tickSchema } from '../../shared/messages/tick.ts';
import type { RunningService } from '../../shared/service-runner.ts';
import { planCycle } from './tick-schedule.ts';

export interface TickProducer extends RunningService {
  /** Resolves when the configured number of cycles is done (never, for 0). */
  finished: Promise<void>;
}

export function startTickProducer(deps: {
  config: TickProducerConfig;
  db: Kysely<Database>;
  bus: BusConnection;
  log: Logger;
}): TickProducer {
  const { config, db, bus } = deps;
  const log = deps.log.child({ component: 'tick-producer' });
  const publisher = createPublisher(bus, { name: 'tick-producer.publish', log, setup: declareCoreTopology });
  const declared = new Set<string>();
  const stopping = new AbortController();

  const publishTick = async (host: string, cycle: number, dueAtMs: number): Promise<void> => {
    if (!declared.has(host)) {
      await publisher.addSetup((channel: Parameters<typeof declareTickQueue>[0]) => declareTickQueue(channel, host));
      declared.add(host);
    }
    const tick: Tick = {
      schemaVersion: SCHEMA_VERSION,
      tickId: randomUUID(),
      host,
      cycle,
      scheduledAt: new Date(dueAtMs).toISOString(),
      trigger: 'periodic',
    };
    await publishJson(publisher, Exchange.ticks, host, encodeMessage(tickSchema, tick), { messageId: tick.tickId, type: 'tick' });
  };

  const runCycle = async (cycle: number, cycleStartMs: number): Promise<void> => {
    const hosts = await listEnabledHosts(db);
    const plan = planCycle(hosts, config.tickIntervalMs, cycleStartMs);
    log.info({ cycle, hosts: hosts.length, intervalMs: config.tickIntervalMs }, 'tick cycle started');
    let published = 0;
    for (const { host, dueAtMs } of plan) {
      const waitMs = dueAtMs - Date.now();
      if (waitMs > 0) await sleep(waitMs, undefined, { signal: stopping.signal });
      try {
        await publishTick(host, cycle, dueAtMs);
        published++;
      } catch (err) {
        log.error({ err: coerceError(err), host, cycle }, 'tick not published, the host waits for the next cycle');
      }
    }
    log.info({ cycle, published, hosts: plan.length }, 'tick cycle published');
  };

  const finished = (async () => {
    const firstStartMs = Date.now();
    for (let cycle = 1; config.maxCycles === 0 || cycle <= config.maxCycles; cycle++) {
      const cycleStartMs = firstStartMs + (cycle - 1) * config.tickIntervalMs;
      try {
        await runCycle(cycle, cycleStartMs);
        const restMs = cycleStartMs + config.tickIntervalMs - Date.now();
        if (restMs > 0 && (config.maxCycles === 0 || cycle < config.maxCycles)) await sleep(restMs, undefined, { signal: stopping.signal });
      } catch (err) {
        if (stopping.signal.aborted) return;
        log.error({ err: coerceError(err), cycle }, 'tick cycle failed, trying again next interval');
      }
    }
  })();

  let stopped: Promise<void> | undefined;
  return {
    finished,
    stop() {
      stopped ??= (async () => {
        stopping.abort();
        await finished;
        await publisher.close();
      })();
      return stopped;
    },
  };
}
