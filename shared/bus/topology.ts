/**
 * The whole bus topology: every exchange, queue, binding and argument. In production it is
 * declared once by `virtsync bus setup` and `virtsync hosts add` (an operator identity) and
 * services only check it exists (BUS_TOPOLOGY=verify, no configure permission); in
 * development every service declares it (declarations are idempotent, so any may start first).
 */
import type { Channel } from 'amqplib';
import { hostRoutingWord } from '../host-name.ts';
import { declareDurableQueues } from './queue-declaration.ts';
import { type PowerState, powerStateKey } from '../power-state.ts';

export const Exchange = {
  /** direct, routing key = host name */
  ticks: 'virtsync.ticks',
  /** topic, `observation.<host>` (a host sync's look) and `event-observation.<host>` (a lifecycle event's) */
  observations: 'virtsync.observations',
  /**
   * topic, `instance.<host>.<new power state>`; a report-only writer's proposals under
   * `proposed.<host>.<new power state>`, which no `instance.#` binding receives.
   */
  changes: 'virtsync.changes',
  /** topic, `report.<host>`, `unknown.<host>` and `host.<host>.<liveness state>` */
  reports: 'virtsync.reports',
  /** fanout into the dead-letter queue */
  deadLetter: 'virtsync.dead-letter',
} as const;

export const Queue = {
  stateWriter: 'virtsync.state-writer',
  /** Lifecycle events' observations, apart: they never wait behind a cycle's backlog in `stateWriter`. */
  stateWriterEvents: 'virtsync.state-writer.events',
  auditSubscriber: 'virtsync.audit-subscriber',
  hostReports: 'virtsync.host-reports',
  deadLetter: 'virtsync.dead-letter',
} as const;

export function tickQueue(host: string): string {
  return `virtsync.tick.${host}`;
}

/** Header carrying why virtsync dead-lettered a message (with the queue and routing key it came from). */
export const REASON_HEADER = 'x-virtsync-reason';
export const ORIGIN_QUEUE_HEADER = 'x-virtsync-queue';
export const ORIGIN_EXCHANGE_HEADER = 'x-virtsync-exchange';
export const ORIGIN_ROUTING_KEY_HEADER = 'x-virtsync-routing-key';

export function observationRoutingKey(host: string): string {
  return `observation.${hostRoutingWord(host)}`;
}

/**
 * A lifecycle event's observations. Its first word is not `observation`, so the `observation.#`
 * binding of `virtsync.state-writer` never takes it: each observation reaches exactly one of
 * the writer's queues, whatever version declared the bindings.
 */
export function eventObservationRoutingKey(host: string): string {
  return `event-observation.${hostRoutingWord(host)}`;
}

/** What a message on the changes exchange is: a committed change, or a report-only writer's proposal. */
export type ChangeKind = 'instance' | 'proposed';

export function changeRoutingKey(host: string, powerState: PowerState, kind: ChangeKind = 'instance'): string {
  return `${kind}.${hostRoutingWord(host)}.${powerStateKey(powerState)}`;
}

export function reportRoutingKey(host: string): string {
  return `report.${hostRoutingWord(host)}`;
}

export function unknownDomainRoutingKey(host: string): string {
  return `unknown.${hostRoutingWord(host)}`;
}

export function livenessRoutingKey(host: string, state: string): string {
  return `host.${hostRoutingWord(host)}.${state}`;
}

/**
 * Durable quorum queues with no delivery limit and no dead-letter exchange: the broker never
 * dead-letters from them. RabbitMQ 3.10 counts every return toward `x-delivery-limit`, a
 * graceful requeue and a dropped connection included, so a limit would dead-letter valid
 * messages whenever a consumer restarts often enough during an outage. Poison is isolated
 * by the consumers instead (shared/bus/batch-consumer.ts): validated on arrival, and a write
 * failing on a message's own data, dead-lettered by virtsync with the reason. Bounds and the
 * like live in broker policies (shared/bus/broker-policies.ts), which can change without
 * recreating a queue.
 */
const durableQuorum = { durable: true, arguments: { 'x-queue-type': 'quorum' } };

/**
 * Exchanges plus the queues that must exist before anything is published to them, so
 * that nothing is lost while their consumer is down or not yet deployed: observations
 * wait for a writer, committed changes and host reports for the audit subscriber.
 * Every service declares this. A queue deployed by an older version with other arguments
 * is kept as it is (shared/bus/queue-declaration.ts).
 */
export async function declareCoreTopology(channel: Channel): Promise<void> {
  await channel.assertExchange(Exchange.ticks, 'direct', { durable: true });
  await channel.assertExchange(Exchange.observations, 'topic', { durable: true });
  await channel.assertExchange(Exchange.changes, 'topic', { durable: true });
  await channel.assertExchange(Exchange.reports, 'topic', { durable: true });
  await channel.assertExchange(Exchange.deadLetter, 'fanout', { durable: true });
  await declareDurableQueues(
    channel,
    [Queue.deadLetter, Queue.stateWriter, Queue.stateWriterEvents, Queue.auditSubscriber, Queue.hostReports].map((name) => ({ name, options: durableQuorum })),
  );
  await channel.bindQueue(Queue.deadLetter, Exchange.deadLetter, '');
  await channel.bindQueue(Queue.stateWriter, Exchange.observations, 'observation.#');
  await channel.bindQueue(Queue.stateWriterEvents, Exchange.observations, 'event-observation.#');
  await channel.bindQueue(Queue.auditSubscriber, Exchange.changes, 'instance.#');
  await channel.bindQueue(Queue.hostReports, Exchange.reports, 'report.#');
}

/** Passive checks of what declareCoreTopology declares: they need no configure permission. */
export async function verifyCoreTopology(channel: Channel): Promise<void> {
  for (const exchange of Object.values(Exchange)) await channel.checkExchange(exchange);
  for (const queue of Object.values(Queue)) await channel.checkQueue(queue);
}

export async function verifyTickQueue(channel: Channel, host: string): Promise<void> {
  await channel.checkQueue(tickQueue(host));
}

/** Declared or checked, as BUS_TOPOLOGY says. */
export type TopologyMode = 'declare' | 'verify';

export function coreTopology(mode: TopologyMode): (channel: Channel) => Promise<void> {
  return mode === 'declare' ? declareCoreTopology : verifyCoreTopology;
}

export function tickQueues(mode: TopologyMode, hosts: readonly string[]): (channel: Channel) => Promise<void> {
  const one = mode === 'declare' ? declareTickQueue : verifyTickQueue;
  return async (channel) => {
    for (const host of hosts) await one(channel, host);
  };
}

/**
 * A host's tick queue keeps only the newest tick: while its agent is down, ticks replace
 * each other instead of piling up, and a returning agent syncs its host at once.
 */
export async function declareTickQueue(channel: Channel, host: string): Promise<void> {
  const queue = tickQueue(host);
  await channel.assertQueue(queue, {
    durable: true,
    arguments: { 'x-max-length': 1, 'x-overflow': 'drop-head' },
  });
  await channel.bindQueue(queue, Exchange.ticks, host);
}
