/**
 * Where a message in the dead-letter queue came from, and whether it may be replayed.
 * Two sources are legitimate: a virtsync consumer (shared/bus/dead-letter.ts stamps the
 * reason, the queue, the exchange and the routing key) and the broker itself (its `x-death`
 * header names the queue, exchange, routing keys and reason). Anything else was put there
 * by hand and is never replayed. A replayable message must also pass its queue's contract
 * again: one dead-lettered as invalid stays where it is.
 */
import type { z } from 'zod';
import { changeEventSchema } from '../messages/change-event.ts';
import { parseMessage } from '../messages/codec.ts';
import { hostReportSchema } from '../messages/host-report.ts';
import { hostObservationsSchema } from '../messages/observation.ts';
import { tickSchema } from '../messages/tick.ts';
import { Exchange, ORIGIN_EXCHANGE_HEADER, ORIGIN_QUEUE_HEADER, ORIGIN_ROUTING_KEY_HEADER, Queue, REASON_HEADER } from './topology.ts';

export type DeadLetterOrigin =
  | { by: 'virtsync' | 'broker'; queue: string; exchange: string; routingKey: string; reason: string }
  | { by: 'unknown'; reason: string };

export type ReplayDecision =
  | { replay: true; exchange: string; routingKey: string }
  | { replay: false; why: string };

/** What each queue takes: where its messages were published, and the contract they must meet. */
function queueContract(queue: string): { exchange: string; schema: z.ZodType } | undefined {
  if (queue === Queue.stateWriter || queue === Queue.stateWriterEvents) return { exchange: Exchange.observations, schema: hostObservationsSchema };
  if (queue === Queue.auditSubscriber) return { exchange: Exchange.changes, schema: changeEventSchema };
  if (queue === Queue.hostReports) return { exchange: Exchange.reports, schema: hostReportSchema };
  if (queue.startsWith('virtsync.tick.')) return { exchange: Exchange.ticks, schema: tickSchema };
  return undefined;
}

function text(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  return undefined;
}

function firstDeath(headers: Record<string, unknown>): { queue?: string; exchange?: string; routingKey?: string; reason?: string } | undefined {
  const deaths: unknown = headers['x-death'];
  if (!Array.isArray(deaths) || deaths.length === 0) return undefined;
  // The broker appends newest first: the last entry is the first death, in the queue it was published to.
  const entry: unknown = deaths[deaths.length - 1];
  if (typeof entry !== 'object' || entry === null) return undefined;
  const routingKeys: unknown = Reflect.get(entry, 'routing-keys');
  return {
    queue: text(Reflect.get(entry, 'queue')),
    exchange: text(Reflect.get(entry, 'exchange')),
    routingKey: Array.isArray(routingKeys) ? text(routingKeys[0]) : undefined,
    reason: text(Reflect.get(entry, 'reason')),
  };
}

export function deadLetterOrigin(headers: Record<string, unknown> | undefined): DeadLetterOrigin {
  const all = headers ?? {};
  const reason = text(all[REASON_HEADER]);
  const queue = text(all[ORIGIN_QUEUE_HEADER]);
  const routingKey = text(all[ORIGIN_ROUTING_KEY_HEADER]);
  if (reason !== undefined && queue !== undefined && routingKey !== undefined) {
    // Dead letters from before the exchange header: the queue says where its messages come from.
    const exchange = text(all[ORIGIN_EXCHANGE_HEADER]) ?? queueContract(queue)?.exchange ?? '';
    return { by: 'virtsync', queue, exchange, routingKey, reason };
  }
  const death = firstDeath(all);
  if (death?.queue !== undefined && death.exchange !== undefined && death.routingKey !== undefined) {
    return { by: 'broker', queue: death.queue, exchange: death.exchange, routingKey: death.routingKey, reason: death.reason ?? 'unknown' };
  }
  return { by: 'unknown', reason: 'no x-death or x-virtsync-reason header: not dead-lettered by the broker or virtsync' };
}

export function replayDecision(origin: DeadLetterOrigin, content: Buffer): ReplayDecision {
  if (origin.by === 'unknown') return { replay: false, why: origin.reason };
  if (origin.by === 'broker' && origin.reason === 'maxlen' && origin.queue === Queue.hostReports) {
    return { replay: false, why: 'an overflowed host report: only the newest report per host matters' };
  }
  const contract = queueContract(origin.queue);
  if (contract === undefined) return { replay: false, why: `not from a virtsync queue (${origin.queue})` };
  // Published to the default exchange straight into the queue (tests, tools): send it back the same way.
  const exchange = origin.exchange === '' ? '' : contract.exchange;
  const routingKey = origin.exchange === '' ? origin.queue : origin.routingKey;
  if (origin.exchange !== '' && origin.exchange !== contract.exchange) {
    return { replay: false, why: `came through ${origin.exchange}, but ${origin.queue} takes ${contract.exchange}` };
  }
  const parsed = parseMessage(contract.schema, content);
  if (!parsed.ok) return { replay: false, why: `still invalid: ${parsed.reason}` };
  return { replay: true, exchange, routingKey };
}
