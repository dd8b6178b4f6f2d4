/**
 * The writer service: observations in, batched commits, acks after commit, change
 * events out through the outbox relay.
 */
import type { Kysely } from 'kysely';
import { createDatabaseBreaker } from '../../shared/breaker.ts';
import { startBatchConsumer } from '../../shared/bus/batch-consumer.ts';
import type { Delivery } from '../../shared/bus/consumer.ts';
import type { BusConnection } from '../../shared/bus/connect.ts';
import { createPublisher } from '../../shared/bus/publisher.ts';
import { coreTopology, Queue } from '../../shared/bus/topology.ts';
import type { StateWriterConfig } from '../../shared/config.ts';
import type { Database } from '../../shared/db/database.ts';
import type { Logger } from '../../shared/logging.ts';
import { changesCommitted, writerBatchSize, writerCommitDuration, writerDecisions } from '../../shared/metrics.ts';
import { powerStateKey } from '../../shared/power-state.ts';
import { type HostObservations, hostObservationsSchema, type Observation, observationsOf } from '../../shared/messages/observation.ts';
import type { RunningService } from '../../shared/service-runner.ts';
import { RULE_REASONS } from '../../shared/sync-rules.ts';
import { applyObservations, type BatchResult } from './apply-observations.ts';
import { startOutboxRelay } from './outbox-relay.ts';
import { refusedPublisher } from './publisher-check.ts';

export async function startStateWriter(deps: {
  config: StateWriterConfig;
  db: Kysely<Database>;
  bus: BusConnection;
  log: Logger;
}): Promise<RunningService> {
  const { config, db, bus } = deps;
  const log = deps.log.child({ component: 'state-writer' });
  const publisher = createPublisher(bus, { name: 'state-writer.publish', log, setup: coreTopology(config.busTopology) });
  const relay = startOutboxRelay({ db, publisher, pollMs: config.outboxPollMs, retentionMs: config.outboxRetentionMs, log });
  const dbBreaker = createDatabaseBreaker(config, log);
  const consumer = await startBatchConsumer(bus, {
    name: 'state-writer.observations',
    log,
    publisher,
    ...observationIntake(config, (observations) => dbBreaker.run(() => applyObservations(db, observations, config.policy))),
    onWritten: (result, _messages, durationMs) => {
      relay.publishCommitted(result.outbox);
      recordBatch(log, result, durationMs);
    },
  });
  log.info({ batchSize: config.batchSize, lingerMs: config.batchLingerMs, policy: config.policy }, 'consuming observations');

  let stopped: Promise<void> | undefined;
  return {
    checks: () => ({ broker: bus.isConnected(), database: dbBreaker.state() !== 'open' }),
    stop() {
      stopped ??= (async () => {
        await consumer.stop();
        await relay.stop();
        await publisher.close();
      })();
      return stopped;
    },
  };
}

/**
 * How the writer takes observations off the bus: host observations messages, batched by the
 * observations they carry, written as one list.
 */
export function observationIntake<R>(config: StateWriterConfig, write: (observations: Observation[]) => Promise<R>) {
  return {
    queue: Queue.stateWriter,
    setup: coreTopology(config.busTopology),
    schema: hostObservationsSchema,
    admit: (message: HostObservations, delivery: Delivery) => refusedPublisher(config.publishers, delivery.message.properties.userId, message.host),
    batchSize: config.batchSize,
    weigh: (message: HostObservations) => message.observations.length,
    lingerMs: config.batchLingerMs,
    write: (messages: HostObservations[]) => write(messages.flatMap(observationsOf)),
  };
}

function recordBatch(log: Logger, result: BatchResult, durationMs: number): void {
  const observations = Object.values(result.outcomes).reduce((sum, count) => sum + count, 0);
  writerBatchSize.observe(observations);
  writerCommitDuration.observe(durationMs / 1000);
  for (const [rule, count] of Object.entries(result.outcomes)) writerDecisions.inc({ rule }, count);
  for (const change of result.changes) changesCommitted.inc({ power_state: powerStateKey(change.after.powerState) });
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
