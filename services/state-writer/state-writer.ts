/**
 * The writer service: observations in, batched commits, acks after commit, change
 * events out through the outbox relay.
 */
import { startBatchConsumer } from '../../shared/bus/batch-consumer.ts';
import { coreTopology, Queue } from '../../shared/bus/topology.ts';
import { stateWriterEnv } from '../../shared/config.ts';
import type { Logger } from '../../shared/logging.ts';
import { changesCommitted, writerBatchSize, writerCommitDuration, writerDecisions } from '../../shared/metrics.ts';
import { powerStateKey } from '../../shared/power-state.ts';
import { hostObservationsSchema, observationsOf } from '../../shared/messages/observation.ts';
import { defineService } from '../../shared/service-runner.ts';
import { RULE_REASONS } from '../../shared/sync-rules.ts';
import { applyObservations, type BatchResult } from './apply-observations.ts';
import { startOutboxRelay } from './outbox-relay.ts';
import { refusedPublisher } from './publisher-check.ts';

export const stateWriter = defineService({
  name: 'state-writer',
  env: stateWriterEnv,
  async start({ config, log, db, bus, publisher, dbBreaker, defer }) {
    const relay = startOutboxRelay({ db, publisher, pollMs: config.outboxPollMs, retentionMs: config.outboxRetentionMs, log });
    defer(() => relay.stop());
    // Host observations messages, batched by the observations they carry, written as one list.
    const consumer = await startBatchConsumer(bus, {
      name: 'state-writer.observations',
      log,
      publisher,
      queue: Queue.stateWriter,
      setup: coreTopology(config.busTopology),
      schema: hostObservationsSchema,
      // The broker vouches for user_id: a host may only report on itself.
      admit: (message, delivery) => refusedPublisher(config.publishers, delivery.message.properties.userId, message.host),
      batchSize: config.batchSize,
      weigh: (message) => message.observations.length,
      lingerMs: config.batchLingerMs,
      write: (messages) => dbBreaker.run(() => applyObservations(db, messages.flatMap(observationsOf), config.policy)),
      onWritten: (result, _messages, durationMs) => {
        relay.publishCommitted(result.outbox);
        recordBatch(log, result, durationMs);
      },
    });
    defer(() => consumer.stop());
    log.info({ batchSize: config.batchSize, lingerMs: config.batchLingerMs, policy: config.policy }, 'consuming observations');
  },
});

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
