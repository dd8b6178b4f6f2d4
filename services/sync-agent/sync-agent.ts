/**
 * The agent: consumes each served host's tick queue and runs a host sync per tick, at
 * most `hostConcurrency` at once; a tick is acked only after its observations are
 * confirmed. With lifecycle events on, it also watches each host's libvirt and observes
 * a domain once its events have settled: drift is caught in about a second, and the
 * ticks remain the safety net. At start it syncs every host once (startup-sync.ts).
 */
import type { Kysely } from 'kysely';
import { type Breaker, createBreaker, createDatabaseBreaker } from '../../shared/breaker.ts';
import type { BusConnection } from '../../shared/bus/connect.ts';
import { type Delivery, startConsumer } from '../../shared/bus/consumer.ts';
import { deadLetter } from '../../shared/bus/dead-letter.ts';
import { createPublisher } from '../../shared/bus/publisher.ts';
import { declareCoreTopology, declareTickQueue, tickQueue } from '../../shared/bus/topology.ts';
import { createInFlight, createLimiter } from '../../shared/concurrency.ts';
import type { SyncAgentConfig } from '../../shared/config.ts';
import type { Database } from '../../shared/db/database.ts';
import { coerceError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import { messagesConsumed, tickLag } from '../../shared/metrics.ts';
import { parseMessage } from '../../shared/messages/codec.ts';
import { tickSchema } from '../../shared/messages/tick.ts';
import type { RunningService } from '../../shared/service-runner.ts';
import { createDebouncer } from './debouncer.ts';
import { createHostSync } from './host-sync.ts';
import { createStartupSync } from './startup-sync.ts';
import { createLibvirtReader, type HypervisorReader } from './hypervisor-reader.ts';
import { type LifecycleWatcher, startLifecycleWatcher } from './lifecycle-watcher.ts';

/**
 * The agent's database pool: a host's rows are one short indexed read, and in production
 * every compute host runs an agent, so a few connections serve all of an agent's syncs.
 */
export function agentDatabaseConnections(config: Pick<SyncAgentConfig, 'hostConcurrency'>): number {
  return Math.min(config.hostConcurrency, 4);
}

export async function startSyncAgent(deps: {
  config: SyncAgentConfig;
  db: Kysely<Database>;
  bus: BusConnection;
  log: Logger;
}): Promise<RunningService> {
  const { config, bus } = deps;
  const log = deps.log.child({ component: 'sync-agent' });
  const uriOf = (host: string): string => config.libvirtUri.replaceAll('{host}', host);
  const libvirtBreakers: Breaker[] = [];
  const readers = new Map<string, HypervisorReader>(
    config.hosts.map((host) => {
      const hostLog = log.child({ host });
      const reader = createLibvirtReader({ uri: uriOf(host), concurrency: config.libvirtConcurrency, log: hostLog });
      const breaker = createBreaker({ name: `libvirt ${host}`, dependency: 'hypervisor', log: hostLog, timeoutMs: config.libvirtTimeoutMs, resetMs: config.breakerResetMs });
      libvirtBreakers.push(breaker);
      return [host, guardReader(reader, breaker)];
    }),
  );
  const dbBreaker = createDatabaseBreaker(config, log);
  const hostOfQueue = new Map(config.hosts.map((host) => [tickQueue(host), host]));
  const publisher = createPublisher(bus, { name: 'sync-agent.publish', log, setup: declareCoreTopology });
  const sync = createHostSync({ db: deps.db, publisher, readerFor: (host) => readers.get(host) as HypervisorReader, dbBreaker, log });
  const limiter = createLimiter(config.hostConcurrency);
  const inFlight = createInFlight();

  const handleTick = async (delivery: Delivery): Promise<void> => {
    const parsed = parseMessage(tickSchema, delivery.message.content);
    const queueHost = hostOfQueue.get(delivery.queue);
    if (!parsed.ok) return deadLetter(publisher, delivery, parsed.reason, log);
    if (parsed.value.host !== queueHost) {
      return deadLetter(publisher, delivery, `tick for host ${parsed.value.host} arrived on the queue of ${queueHost}`, log);
    }
    const tick = parsed.value;
    tickLag.observe(Math.max(0, Date.now() - Date.parse(tick.scheduledAt)) / 1000);
    try {
      await limiter.run(() => sync.syncHost(tick));
    } catch (err) {
      // Only the report publish can fail here; the next tick redoes the host anyway.
      log.error({ err: coerceError(err), host: tick.host }, 'host report not published');
    }
    delivery.ack();
    messagesConsumed.inc({ queue: delivery.queue });
  };

  const consumer = await startConsumer(bus, {
    name: 'sync-agent.ticks',
    log,
    queues: [...hostOfQueue.keys()],
    prefetch: 1,
    setup: async (channel) => {
      await declareCoreTopology(channel);
      for (const host of config.hosts) await declareTickQueue(channel, host);
    },
    onDelivery: (delivery) => inFlight.track(handleTick(delivery)),
  });

  const startup = createStartupSync({
    hosts: config.hosts,
    windowMs: config.startupSyncWindowMs,
    log,
    syncHost: (request) => {
      const work = limiter.run(() => sync.syncHost(request));
      inFlight.track(work);
      return work;
    },
  });
  const watchers: LifecycleWatcher[] = [];
  // Keys are host + NUL + domain name: neither can contain a NUL.
  const debouncer = createDebouncer(config.eventDebounceMs, (key) => {
    const [host, domainName] = key.split('\u0000') as [string, string];
    inFlight.track(
      sync.syncDomain(host, domainName).then(
        (outcome) => log.debug({ host, domainName, outcome }, 'domain observed after lifecycle event'),
        (err: unknown) => log.warn({ err: coerceError(err), host, domainName }, 'domain not observed after lifecycle event, the next tick covers it'),
      ),
    );
  });
  if (config.lifecycleEvents) {
    for (const host of config.hosts) {
      watchers.push(
        startLifecycleWatcher({
          uri: uriOf(host),
          log: log.child({ host }),
          onEvent: (event) => debouncer.push(`${host}\u0000${event.domainName}`),
          onReconnected: () => startup.resync(host),
        }),
      );
    }
  }
  startup.start();
  log.info({ hosts: config.hosts.length, lifecycleEvents: config.lifecycleEvents }, 'consuming ticks');

  let stopped: Promise<void> | undefined;
  return {
    checks: () => ({
      broker: bus.isConnected(),
      database: dbBreaker.state() !== 'open',
      libvirt: libvirtBreakers.every((breaker) => breaker.state() !== 'open'),
    }),
    stop() {
      stopped ??= (async () => {
        startup.stop();
        await Promise.all(watchers.map((watcher) => watcher.stop()));
        debouncer.clear();
        await consumer.cancel();
        await inFlight.settled();
        await consumer.close();
        await publisher.close();
        await Promise.all([...readers.values()].map((reader) => reader.close()));
      })();
      return stopped;
    },
  };
}

/** Every libvirt call of a host through that host's breaker: one hung hypervisor cannot hold up the others. */
function guardReader(reader: HypervisorReader, breaker: Breaker): HypervisorReader {
  return {
    read: () => breaker.run(() => reader.read()),
    readDomain: (name) => breaker.run(() => reader.readDomain(name)),
    close: () => reader.close(),
  };
}
