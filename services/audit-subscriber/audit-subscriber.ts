/**
 * The first downstream consumer, and the worked example for writing one: bind a queue
 * to the changes exchange, parse every event (never cast), dead-letter what is invalid,
 * write in batches, dedupe on the stable event id, ack after the write.
 */
import type { Kysely } from 'kysely';
import { createBatcher } from '../../shared/batcher.ts';
import type { BusConnection } from '../../shared/bus/connect.ts';
import { type Delivery, startConsumer } from '../../shared/bus/consumer.ts';
import { deadLetter } from '../../shared/bus/dead-letter.ts';
import { createPublisher } from '../../shared/bus/publisher.ts';
import { declareCoreTopology, Queue } from '../../shared/bus/topology.ts';
import type { AuditSubscriberConfig } from '../../shared/config.ts';
import { appendAuditEntries } from '../../shared/db/audit-log.ts';
import type { AuditEntry, Database } from '../../shared/db/database.ts';
import { isTransientDatabaseError } from '../../shared/db/transient-error.ts';
import { coerceError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import { type ChangeEvent, changeEventSchema } from '../../shared/messages/change-event.ts';
import { parseMessage } from '../../shared/messages/codec.ts';
import { retryWithBackoff } from '../../shared/retry.ts';
import type { RunningService } from '../../shared/service-runner.ts';
import { RULE_REASONS } from '../../shared/sync-rules.ts';

export function toAuditEntry(event: ChangeEvent): AuditEntry {
  return {
    event_id: event.eventId,
    instance_uuid: event.instanceUuid,
    host: event.host,
    rule: event.rule,
    reason: RULE_REASONS[event.rule],
    before_power_state: event.before.powerState,
    after_power_state: event.after.powerState,
    before_vm_state: event.before.vmState,
    after_vm_state: event.after.vmState,
    observation_id: event.observationId,
    observed_at: event.observedAt,
    committed_at: event.committedAt,
  };
}

export async function startAuditSubscriber(deps: {
  config: AuditSubscriberConfig;
  db: Kysely<Database>;
  bus: BusConnection;
  log: Logger;
}): Promise<RunningService> {
  const { config, db, bus } = deps;
  const log = deps.log.child({ component: 'audit-subscriber' });
  const publisher = createPublisher(bus, { name: 'audit-subscriber.dead-letter', log, setup: declareCoreTopology });
  const stopping = new AbortController();

  const flush = async (deliveries: Delivery[]): Promise<void> => {
    const valid: Array<{ delivery: Delivery; event: ChangeEvent }> = [];
    for (const delivery of deliveries) {
      const parsed = parseMessage(changeEventSchema, delivery.message.content);
      if (parsed.ok) valid.push({ delivery, event: parsed.value });
      else await deadLetter(publisher, delivery, parsed.reason, log);
    }
    if (valid.length === 0) return;
    try {
      const recorded = await retryWithBackoff(() => appendAuditEntries(db, valid.map(({ event }) => toAuditEntry(event))), {
        shouldRetry: isTransientDatabaseError,
        signal: stopping.signal,
        onRetry: (err, attempt, delayMs) => log.warn({ err: coerceError(err), attempt, delayMs }, 'audit write failed, retrying'),
      });
      for (const { delivery } of valid) delivery.ack();
      log.info({ events: valid.length, recorded, duplicates: valid.length - recorded }, 'audit entries recorded');
    } catch (err) {
      log.error({ err: coerceError(err), events: valid.length }, 'audit write failed, requeueing its events');
      for (const { delivery } of valid) delivery.requeue();
    }
  };

  const batcher = createBatcher<Delivery>({ maxSize: config.batchSize, lingerMs: config.batchLingerMs, flush });
  const consumer = await startConsumer(bus, {
    name: 'audit-subscriber.changes',
    log,
    queues: [Queue.auditSubscriber],
    prefetch: config.batchSize * 2,
    setup: declareCoreTopology,
    onDelivery: (delivery) => batcher.add(delivery),
  });
  log.info('consuming change events');

  let stopped: Promise<void> | undefined;
  return {
    stop() {
      stopped ??= (async () => {
        await consumer.cancel();
        await batcher.drain();
        stopping.abort();
        await consumer.close();
        await publisher.close();
      })();
      return stopped;
    },
  };
}
