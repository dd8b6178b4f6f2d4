/**
 * The agent: consumes each served host's tick queue and runs a host sync per tick, at
 * most `hostConcurrency` at once; a tick is acked only after its observations are
 * confirmed. With lifecycle events on, it also watches each host's libvirt and observes
 * a domain once its events have settled: drift is caught in about a second, and the
 * ticks remain the safety net. At start it syncs every host once (startup-sync.ts).
 */
import { type Breaker, createBreaker } from '../../shared/breaker.ts';
import { brokerUser } from '../../shared/bus/broker-user.ts';
import { type Delivery, startConsumer } from '../../shared/bus/consumer.ts';
import { deadLetter } from '../../shared/bus/dead-letter.ts';
import type { Publisher } from '../../shared/bus/publisher.ts';
import { coreTopology, tickQueue, tickQueues, type TopologyMode } from '../../shared/bus/topology.ts';
import { awaitTopology } from '../../shared/bus/topology-gate.ts';
import { createInFlight, createLimiter } from '../../shared/concurrency.ts';
import { type SyncAgentConfig, syncAgentEnv } from '../../shared/config.ts';
import { coerceError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import { messagesConsumed, tickLag } from '../../shared/metrics.ts';
import { parseMessage } from '../../shared/messages/codec.ts';
import { tickSchema } from '../../shared/messages/tick.ts';
import { type Closer, defineService } from '../../shared/service-runner.ts';
import { createAgentPublications } from './agent-publications.ts';
import { createDebouncer } from './debouncer.ts';
import { createDomainBatchSync } from './domain-batch-sync.ts';
import { createEventChannel } from './event-channel.ts';
import { createEventCoalescer, type EventCoalescer } from './event-coalescer.ts';
import { createHostSync } from './host-sync.ts';
import { createLibvirtReader, type HypervisorReader } from './hypervisor-reader.ts';
import { startLifecycleWatcher } from './lifecycle-watcher.ts';
import { createLookClock } from './look-clock.ts';
import { createStartupSync } from './startup-sync.ts';

/**
 * The agent's database pool: a host's rows are one short indexed read, and in production
 * every compute host runs an agent, so a few connections serve all of an agent's syncs.
 */
export function agentDatabaseConnections(config: Pick<SyncAgentConfig, 'hostConcurrency'>): number {
  return Math.min(config.hostConcurrency, 4);
}

/** One served host: its libvirt reader behind its own breaker, so one hung hypervisor cannot hold up the others. */
interface ServedHost {
  reader: HypervisorReader;
  breaker: Breaker;
}

export const syncAgent = defineService({
  name: 'sync-agent',
  env: syncAgentEnv,
  maxDatabaseConnections: agentDatabaseConnections,
  async start({ config, log, db, bus, publisher, dbBreaker, defer }) {
    const uriOf = (host: string): string => config.libvirtUri.replaceAll('{host}', host);
    const served = new Map(config.hosts.map((host) => [host, serveHost(host, uriOf(host), config, log.child({ host }))]));
    defer(() => Promise.all([...served.values()].map(({ reader }) => reader.close())).then(() => undefined));
    const readerFor = (host: string): HypervisorReader => {
      const entry = served.get(host);
      if (entry === undefined) throw new Error(`host ${host} is not served by this agent`);
      return entry.reader;
    };
    const lookClock = createLookClock(db, dbBreaker);
    const now = (): number => Date.now() + config.clockOffsetMs;
    // Stamped as user_id on everything the agent publishes: the broker vouches for it, the writer checks it.
    const publishAs = brokerUser(config.amqpUrl, config.amqpTls);
    const events = createEventChannel(bus, { log, setup: coreTopology(config.busTopology) });
    defer(() => events.publisher.close());
    const publish = createAgentPublications(publisher, events, publishAs);
    const sync = createHostSync({ db, publisher, publishAs, publish, readerFor, dbBreaker, lookClock, now, log });
    const limiter = createLimiter(config.hostConcurrency);
    const inFlight = createInFlight();
    const hostOfQueue = new Map(config.hosts.map((host) => [tickQueue(host), host]));

    const rejectTick = (delivery: Delivery, reason: string): Promise<void> => rejectInvalidTick(config.busTopology, publisher, delivery, reason, log);

    const handleTick = async (delivery: Delivery): Promise<void> => {
      const parsed = parseMessage(tickSchema, delivery.message.content);
      const queueHost = hostOfQueue.get(delivery.queue);
      if (!parsed.ok) return rejectTick(delivery, parsed.reason);
      if (parsed.value.host !== queueHost) return rejectTick(delivery, `tick for host ${parsed.value.host} arrived on the queue of ${queueHost}`);
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

    // Provisioned topology: `virtsync hosts add` declares each host's tick queue; until then the agent waits.
    if (config.busTopology === 'verify') await awaitTopology(bus, { what: 'tick queues', check: tickQueues('verify', config.hosts), log });
    const consumer = await startConsumer(bus, {
      name: 'sync-agent.ticks',
      log,
      queues: [...hostOfQueue.keys()],
      prefetch: 1,
      setup: async (channel) => {
        await coreTopology(config.busTopology)(channel);
        await tickQueues(config.busTopology, config.hosts)(channel);
      },
      onDelivery: (delivery) => inFlight.track(handleTick(delivery)),
    });
    defer(async () => {
      await consumer.cancel();
      await inFlight.settled();
      await consumer.close();
    });
    const startup = createStartupSync({
      enabled: config.startupSync,
      hosts: config.hosts,
      windowMs: config.startupSyncWindowMs,
      log,
      syncHost: (request) => {
        const work = limiter.run(() => sync.syncHost(request));
        inFlight.track(work);
        return work;
      },
    });
    defer(() => startup.stop());

    if (config.lifecycleEvents) {
      const batchSync = createDomainBatchSync({ db, publish, readerFor, dbBreaker, lookClock, now });
      const events = createEventCoalescer({
        syncOne: (host, domainName) => sync.syncDomain(host, domainName).then((outcome) => log.debug({ host, domainName, outcome }, 'domain observed after lifecycle event')),
        syncMany: (host, domainNames) =>
          batchSync.syncDomains(host, domainNames).then((outcome) => log.debug({ host, domains: domainNames.length, ...outcome }, 'domains observed after lifecycle events')),
        onError: (host, domainNames, err) =>
          log.warn({ err: coerceError(err), host, domains: domainNames.length, sample: domainNames.slice(0, 5) }, 'domains not observed after lifecycle events, the next tick covers them'),
        track: (work) => inFlight.track(work),
        hostConcurrency: config.hostConcurrency,
        perHostConcurrency: config.libvirtConcurrency,
      });
      defer(() => events.clear());
      for (const host of config.hosts) {
        watchLifecycle(host, { uri: uriOf(host), debounceMs: config.eventDebounceMs, events, onReconnected: () => startup.resync(host), log: log.child({ host }), defer });
      }
    }
    startup.start();
    log.info({ hosts: config.hosts.length, lifecycleEvents: config.lifecycleEvents }, 'consuming ticks');
    return { checks: () => ({ libvirt: [...served.values()].every(({ breaker }) => breaker.state() !== 'open') }) };
  },
});

/**
 * A tick that can never be processed. Declared topology: dead-lettered by the agent with the
 * reason. Provisioned topology: agents may not write to the dead-letter exchange (a compromised
 * host could forge entries there), so the tick is rejected without requeue and its reason
 * logged; the next tick supersedes it anyway.
 */
async function rejectInvalidTick(mode: TopologyMode, publisher: Publisher, delivery: Delivery, reason: string, log: Logger): Promise<void> {
  if (mode === 'declare') return deadLetter(publisher, delivery, reason, log);
  log.error({ queue: delivery.queue, reason, messageId: delivery.message.properties.messageId }, 'invalid tick rejected');
  delivery.reject();
}

function serveHost(host: string, uri: string, config: SyncAgentConfig, log: Logger): ServedHost {
  const reader = createLibvirtReader({ uri, reconnectWaitMs: config.libvirtReconnectWaitMs, log });
  const breaker = createBreaker({ name: 'libvirt', host, dependency: 'hypervisor', log, timeoutMs: config.libvirtTimeoutMs, resetMs: config.breakerResetMs });
  return {
    breaker,
    reader: {
      read: () => breaker.run(() => reader.read()),
      readDomain: (name) => breaker.run(() => reader.readDomain(name)),
      close: () => reader.close(),
    },
  };
}

/** Hands a host's domains to the event coalescer once their lifecycle events have settled (one debouncer per host, keyed by domain name). */
function watchLifecycle(host: string, deps: { uri: string; debounceMs: number; events: EventCoalescer; onReconnected: () => void; log: Logger; defer: (closer: Closer) => void }): void {
  const debouncer = createDebouncer(deps.debounceMs, (domainName) => deps.events.push(host, domainName));
  deps.defer(() => debouncer.clear());
  const watcher = startLifecycleWatcher({ host, uri: deps.uri, log: deps.log, onEvent: (event) => debouncer.push(event.domainName), onReconnected: deps.onReconnected });
  deps.defer(() => watcher.stop());
}
