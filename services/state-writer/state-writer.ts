/**
 * The writer service: observations in, batched commits, acks after commit, change
 * events out through the outbox relay.
 */
import { startBatchConsumer } from '../../shared/bus/batch-consumer.ts';
import { registerQueueDepthGauge } from '../../shared/bus/queue-depth-gauge.ts';
import { startDeadLetterWatch } from '../../shared/bus/dead-letter-watch.ts';
import { Queue } from '../../shared/bus/topology.ts';
import { stateWriterEnv } from '../../shared/config.ts';
import { hostObservationsSchema, observationsOf } from '../../shared/messages/observation.ts';
import { defineService } from '../../shared/service-runner.ts';
import { applyObservations } from './apply-observations.ts';
import { createBatchLog } from './batch-log.ts';
import { registerInstanceStateGauge } from './instance-state-gauge.ts';
import { startOutboxRelay } from './outbox-relay.ts';

export const stateWriter = defineService({
  name: 'state-writer',
  env: stateWriterEnv,
  async start({ config, log, db, bus, publisher, dbBreaker, defer, metrics }) {
    const batchLog = createBatchLog(config, log);
    const relay = startOutboxRelay({ db, publisher, pollMs: config.outboxPollMs, retentionMs: config.outboxRetentionMs, log });
    defer(() => relay.stop());
    const deadLetters = startDeadLetterWatch({ channel: publisher, log, intervalMs: 15_000 });
    defer(() => deadLetters.stop());
    // Host observations messages, batched by the observations they carry, written as one list.
    const consumer = await startBatchConsumer(bus, {
      name: 'state-writer.observations',
      log,
      publisher,
      queue: Queue.stateWriter,
      schema: hostObservationsSchema,
      batchSize: config.batchSize,
      weigh: (message) => message.observations.length,
      lingerMs: config.batchLingerMs,
      write: (messages) => {
        batchLog.recordClockOffsets(messages);
        return dbBreaker.run(() => applyObservations(db, messages.flatMap(observationsOf), config.policy));
      },
      onWritten: (result, _messages, durationMs) => {
        relay.publishCommitted(result.outbox);
        batchLog.recordCommitted(result, durationMs);
      },
    });
    defer(() => consumer.stop());
    // Read at scrape time: the fleet by state, and the observations waiting for a writer.
    registerInstanceStateGauge({ registry: metrics, db, log });
    registerQueueDepthGauge({ registry: metrics, channel: publisher, queues: [Queue.stateWriter], log });
    log.info({ batchSize: config.batchSize, lingerMs: config.batchLingerMs, policy: config.policy }, 'consuming observations');
    return { checks: () => ({ writes: consumer.health() }) };
  },
});
