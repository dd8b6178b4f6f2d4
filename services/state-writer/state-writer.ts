/**
 * The writer service: observations in, batched commits, acks after commit, change
 * events out through the outbox relay. WRITER_MODE=report-only decides the same way, writes
 * only its shadow and publishes proposals (shadow-ledger.ts); a writer starting in write
 * mode drops that shadow and decides on the real table.
 */
import type { Kysely } from 'kysely';
import type { Breaker } from '../../shared/breaker.ts';
import { startBatchConsumer } from '../../shared/bus/batch-consumer.ts';
import { registerQueueDepthGauge } from '../../shared/bus/queue-depth-gauge.ts';
import { startDeadLetterWatch } from '../../shared/bus/dead-letter-watch.ts';
import { coreTopology, Queue } from '../../shared/bus/topology.ts';
import { type StateWriterConfig, stateWriterEnv } from '../../shared/config.ts';
import { hostObservationsSchema, observationsOf } from '../../shared/messages/observation.ts';
import { type Closer, defineService } from '../../shared/service-runner.ts';
import type { Database } from '../../shared/db/database.ts';
import { clearShadow } from '../../shared/db/sync-shadow.ts';
import { coerceError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import { applyObservations } from './apply-observations.ts';
import { createBatchLog } from './batch-log.ts';
import { registerInstanceStateGauge } from './instance-state-gauge.ts';
import { type OutboxRelay, startOutboxRelay } from './outbox-relay.ts';
import { refusedPublisher } from './publisher-check.ts';
import { startUnreachableHostPolicy } from './unreachable-hosts.ts';

export const stateWriter = defineService({
  name: 'state-writer',
  env: stateWriterEnv,
  async start({ config, log, db, bus, publisher, dbBreaker, defer, metrics }) {
    const batchLog = createBatchLog(config, log);
    if (config.mode === 'write') await dropShadow(db, dbBreaker, log);
    const relay = startOutboxRelay({ db, publisher, pollMs: config.outboxPollMs, retentionMs: config.outboxRetentionMs, log });
    defer(() => relay.stop());
    const deadLetters = startDeadLetterWatch({ channel: publisher, log, intervalMs: 15_000 });
    defer(() => deadLetters.stop());
    // Host observations messages, batched by the observations they carry, written as one list;
    // lifecycle events' first, so that none waits behind a cycle's backlog.
    const consumer = await startBatchConsumer(bus, {
      name: 'state-writer.observations',
      log,
      publisher,
      queue: Queue.stateWriter,
      urgentQueue: Queue.stateWriterEvents,
      setup: coreTopology(config.busTopology),
      schema: hostObservationsSchema,
      // The broker vouches for user_id: a host may only report on itself.
      admit: (message, delivery) => refusedPublisher(config.publishers, delivery.message.properties.userId, message.host),
      batchSize: config.batchSize,
      weigh: (message) => message.observations.length,
      lingerMs: config.batchLingerMs,
      // Batches in flight at once never share an instance: each instance's looks commit one batch after the other, in arrival order.
      maxInFlight: config.maxInFlight,
      keysOf: (message) => message.observations.map((observation) => observation.instanceUuid),
      write: (messages) => {
        batchLog.recordClockOffsets(messages);
        return dbBreaker.run(() => applyObservations(db, messages.flatMap(observationsOf), config.policy, config.mode));
      },
      onWritten: (result, _messages, durationMs) => {
        relay.publishCommitted(result.outbox);
        batchLog.recordCommitted(result, durationMs);
      },
    });
    defer(() => consumer.stop());
    // Read at scrape time: the fleet by state, and the observations waiting for a writer.
    registerInstanceStateGauge({ registry: metrics, db, log });
    registerQueueDepthGauge({ registry: metrics, channel: publisher, queues: [Queue.stateWriter, Queue.stateWriterEvents], log });
    startUnreachablePolicy(config, { db, dbBreaker, relay, defer, log });
    log.info({ mode: config.mode, batchSize: config.batchSize, lingerMs: config.batchLingerMs, maxInFlight: config.maxInFlight, policy: config.policy }, 'consuming observations');
    return { checks: () => ({ writes: consumer.health() }) };
  },
});

/** UNREACHABLE_HOST_POLICY=nostate writes rows: a report-only writer leaves it to the writing ones. */
function startUnreachablePolicy(
  config: Pick<StateWriterConfig, 'mode' | 'unreachableHosts'>,
  deps: { db: Kysely<Database>; dbBreaker: Breaker; relay: OutboxRelay; defer: (closer: Closer) => void; log: Logger },
): void {
  const { policy, afterMs, checkMs } = config.unreachableHosts;
  if (policy !== 'nostate') return;
  if (config.mode !== 'write') {
    deps.log.warn('UNREACHABLE_HOST_POLICY=nostate is not applied by a report-only writer: it writes nothing');
    return;
  }
  const unreachable = startUnreachableHostPolicy({ ...deps, afterMs, checkMs, publishCommitted: (outbox) => deps.relay.publishCommitted(outbox) });
  deps.defer(() => unreachable.stop());
}

/**
 * Write mode ignores the report-only shadow; dropping it also stops agents re-reporting the
 * rows it held. Not fatal: a writer that cannot reach the database finds out on its first batch.
 */
async function dropShadow(db: Kysely<Database>, dbBreaker: Breaker, log: Logger): Promise<void> {
  try {
    const dropped = await dbBreaker.run(() => clearShadow(db));
    if (dropped > 0) log.info({ dropped }, 'report-only shadow dropped: writing starts from the real table');
  } catch (err) {
    log.warn({ err: coerceError(err) }, 'report-only shadow not dropped (write mode ignores it; agents keep re-reporting its rows until it is)');
  }
}
