/**
 * The writer service: observations in, batched commits, acks after commit, change
 * events out through the outbox relay. Invalid observations are dead-lettered with the
 * reason; a batch that fails on a transient database error is retried with backoff while
 * its deliveries stay unacked.
 */
import type { Kysely } from 'kysely';
import { createBatcher } from '../../shared/batcher.ts';
import type { BusConnection } from '../../shared/bus/connect.ts';
import { type Delivery, startConsumer } from '../../shared/bus/consumer.ts';
import { deadLetter } from '../../shared/bus/dead-letter.ts';
import { createPublisher } from '../../shared/bus/publisher.ts';
import { declareCoreTopology, Queue } from '../../shared/bus/topology.ts';
import type { StateWriterConfig } from '../../shared/config.ts';
import type { Database } from '../../shared/db/database.ts';
import { isTransientDatabaseError } from '../../shared/db/transient-error.ts';
import { coerceError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import { parseMessage } from '../../shared/messages/codec.ts';
import { type Observation, observationSchema } from '../../shared/messages/observation.ts';
import { retryWithBackoff } from '../../shared/retry.ts';
import type { RunningService } from '../../shared/service-runner.ts';
import { RULE_REASONS } from '../../shared/sync-rules.ts';
import { applyObservations, type BatchResult } from './apply-observations.ts';
import { startOutboxRelay } from './outbox-relay.ts';

export async function startStateWriter(deps: {
  config: StateWriterConfig;
  db: Kysely<Database>;
  bus: BusConnection;
  log: Logger;
}): Promise<RunningService> {
  const { config, db, bus } = deps;
  const log = deps.log.child({ component: 'state-writer' });
  const publisher = createPublisher(bus, { name: 'state-writer.publish', log, setup: declareCoreTopology });
  const relay = startOutboxRelay({ db, publisher, pollMs: config.outboxPollMs, log });
  const stopping = new AbortController();

  const commit = (observations: Observation[]): Promise<BatchResult> =>
    retryWithBackoff(() => applyObservations(db, observations, config.policy), {
      shouldRetry: isTransientDatabaseError,
      signal: stopping.signal,
      onRetry: (err, attempt, delayMs) =>
        log.warn({ err: coerceError(err), attempt, delayMs, observations: observations.length }, 'batch rolled back, retrying'),
    });

  const flush = async (deliveries: Delivery[]): Promise<void> => {
    const started = Date.now();
    const valid: Array<{ delivery: Delivery; observation: Observation }> = [];
    for (const delivery of deliveries) {
      const parsed = parseMessage(observationSchema, delivery.message.content);
      if (parsed.ok) valid.push({ delivery, observation: parsed.value });
      else await deadLetter(publisher, delivery, parsed.reason, log);
    }
    if (valid.length === 0) return;

    let result: BatchResult;
    try {
      result = await commit(valid.map((entry) => entry.observation));
    } catch (err) {
      log.error({ err: coerceError(err), observations: valid.length }, 'batch failed, requeueing its observations');
      for (const { delivery } of valid) delivery.requeue();
      return;
    }
    for (const { delivery } of valid) delivery.ack();
    relay.wake();
    logBatch(log, result, valid.length, Date.now() - started);
  };

  const batcher = createBatcher<Delivery>({ maxSize: config.batchSize, lingerMs: config.batchLingerMs, flush });
  const consumer = await startConsumer(bus, {
    name: 'state-writer.observations',
    log,
    queues: [Queue.stateWriter],
    // Room for the next batch to fill while this one commits.
    prefetch: config.batchSize * 2,
    setup: declareCoreTopology,
    onDelivery: (delivery) => batcher.add(delivery),
  });
  log.info({ batchSize: config.batchSize, lingerMs: config.batchLingerMs }, 'consuming observations');

  let stopped: Promise<void> | undefined;
  return {
    stop() {
      stopped ??= (async () => {
        await consumer.cancel();
        await batcher.drain();
        stopping.abort();
        await relay.stop();
        await consumer.close();
        await publisher.close();
      })();
      return stopped;
    },
  };
}

function logBatch(log: Logger, result: BatchResult, observations: number, durationMs: number): void {
  for (const change of result.changes) {
    if (change.rule === 'missing') {
      log.warn({ instanceUuid: change.instanceUuid, host: change.host }, 'instance in the database but unknown to the hypervisor, power state set to NOSTATE');
    }
  }
  for (const { observation, rule } of result.notable) {
    log.info({ instanceUuid: observation.instanceUuid, observingHost: observation.host, rule, reason: RULE_REASONS[rule] }, 'observation left the row unchanged');
  }
  log.info({ observations, changes: result.changes.length, outcomes: result.outcomes, durationMs }, 'batch committed');
}
