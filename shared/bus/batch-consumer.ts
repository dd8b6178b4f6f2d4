/**
 * The consume → validate → write in batches → ack loop every database-writing consumer
 * shares. Each message is validated as it arrives and an invalid one is dead-lettered
 * with the reason at once, so it never waits for, or takes part in, a batch.
 *
 * A write can fail because of one message's data (a data exception or an integrity
 * violation, see shared/db/transient-error.ts): the batch is then written again one message
 * at a time, and only the message that fails on its own is dead-lettered, with the error as
 * its reason. Every other failure (connection lost, authentication, a missing GRANT, a
 * read-only server, a table missing, a bug) says nothing about the messages: the batch stays
 * unacked (the prefetch holds further deliveries back, so consuming stops), is retried with
 * backoff until it is written or the consumer stops, and `health()` reports why. On stop the
 * batch is requeued. Acks happen only after the write.
 *
 * With `maxInFlight` above 1, that many batches are written at once, each in its own write,
 * retried, acked (each delivery on its own, never "all up to") or requeued on its own. Messages
 * whose `keysOf` overlap are never in writes at once, and are written in the order they arrived
 * from their queue (shared/batcher.ts); without `keysOf`, one write at a time.
 *
 * With `urgentQueue`, a second queue is consumed beside `queue` and its messages go first,
 * in a write slot kept for them beyond `maxInFlight`: each waits only for writes holding its
 * keys and for urgent messages ahead of it, never for the batches of `queue`, in flight or
 * waiting (shared/batcher.ts). The prefetch is per consumer, so `queue`'s backlog never holds
 * the urgent queue's deliveries back.
 * Which queue delivered a message decides only when it is written, never how: the writer's
 * decisions do not depend on arrival order.
 */
import type { Channel } from 'amqplib';
import type { z } from 'zod';
import { createBatcher } from '../batcher.ts';
import { createInFlight } from '../concurrency.ts';
import { describeUnavailability, isDataError } from '../db/transient-error.ts';
import { coerceError, VirtsyncError } from '../errors.ts';
import type { Logger } from '../logging.ts';
import { messagesConsumed } from '../metrics.ts';
import { parseMessage } from '../messages/codec.ts';
import { retryWithBackoff } from '../retry.ts';
import type { BusConnection } from './connect.ts';
import { type Delivery, startConsumer } from './consumer.ts';
import { deadLetter } from './dead-letter.ts';
import { declareCoreTopology } from './topology.ts';
import type { Publisher } from './publisher.ts';

export interface ConsumerHealth {
  ok: boolean;
  /** Why writes fail, while they do. */
  reason?: string;
}

export interface BatchConsumer {
  /** Whether writes go through: not while any write is being retried, and then why the dependency is unavailable. */
  health(): ConsumerHealth;
  /** Stops intake, writes and acks what is in hand, closes the channel. Safe to call twice. */
  stop(): Promise<void>;
}

/** Only the data a message carries can make it unwritable for good; anything else is the dependency's state. */
export function isMessageFault(err: unknown): boolean {
  return isDataError(err) || (err instanceof VirtsyncError && !err.retryable);
}

export async function startBatchConsumer<S extends z.ZodType, R>(
  bus: BusConnection,
  options: {
    name: string;
    log: Logger;
    queue: string;
    /** Consumed too, and written before anything `queue` delivered that is still waiting. */
    urgentQueue?: string;
    schema: S;
    /** How much a batch may hold, by `weigh`. */
    batchSize: number;
    /** What one message counts toward batchSize (default 1): e.g. how many rows it writes. */
    weigh?: (message: z.output<S>) => number;
    lingerMs: number;
    /** Batches written at once (default 1). */
    maxInFlight?: number;
    /** What a message must not be written beside (e.g. the instances it observes); by default, everything. */
    keysOf?: (message: z.output<S>) => readonly string[];
    /** The topology the consumer needs, declared or checked (see coreTopology); declared by default. */
    setup?: (channel: Channel) => Promise<void>;
    /** A valid message its publisher may not send (see the writer's publisher check): the reason, or undefined to accept it. */
    admit?: (message: z.output<S>, delivery: Delivery) => string | undefined;
    /** Where rejected messages are dead-lettered from. */
    publisher: Publisher;
    write: (messages: Array<z.output<S>>) => Promise<R>;
    /** After the write and the acks. */
    onWritten?: (result: R, messages: number, durationMs: number) => void;
  },
): Promise<BatchConsumer> {
  const { log } = options;
  // The urgent queue first: a consumer the broker refuses (a missing read permission) fails the start before any delivery is taken in.
  const queues = options.urgentQueue === undefined ? [options.queue] : [options.urgentQueue, options.queue];
  const stopping = new AbortController();
  const rejections = createInFlight();
  /** Why each write now being retried failed last. With several in flight, one that keeps failing keeps the consumer unhealthy while others go through. */
  const retrying = new Map<symbol, string>();
  const health = (): ConsumerHealth => {
    const reason = [...retrying.values()].at(-1);
    return reason === undefined ? { ok: true } : { ok: false, reason };
  };
  type Entry = { delivery: Delivery; message: z.output<S> };

  const receive = (delivery: Delivery): void => {
    const parsed = parseMessage(options.schema, delivery.message.content);
    if (!parsed.ok) return rejections.track(deadLetter(options.publisher, delivery, parsed.reason, log));
    const refused = options.admit?.(parsed.value, delivery);
    if (refused !== undefined) return rejections.track(deadLetter(options.publisher, delivery, refused, log));
    batcher.add({ delivery, message: parsed.value }, options.weigh?.(parsed.value) ?? 1, delivery.queue === options.urgentQueue ? 'urgent' : 'standard');
  };

  const flush = async (valid: Entry[]): Promise<void> => {
    const started = Date.now();
    try {
      await writeAndAck(valid, started);
    } catch (err) {
      if (!isMessageFault(err) || valid.length === 1) return settleFailed(valid, err);
      log.warn({ err: coerceError(err), messages: valid.length }, 'batch failed, writing its messages one by one to find the culprit');
      for (const entry of valid) {
        await writeAndAck([entry], Date.now()).catch((singleErr: unknown) => settleFailed([entry], singleErr));
      }
    }
  };

  const writeAndAck = async (entries: Entry[], started: number): Promise<void> => {
    const messages = entries.map((entry) => entry.message);
    const write = Symbol('write');
    let result: R;
    try {
      result = await retryWithBackoff(() => options.write(messages), {
        shouldRetry: (err) => !isMessageFault(err),
        signal: stopping.signal,
        onRetry: (err, attempt, delayMs) => {
          const reason = describeUnavailability(err);
          if (retrying.size === 0) log.error({ reason, queue: queues.join(', ') }, 'dependency unavailable: consuming paused, batch kept unacked and retried');
          retrying.set(write, reason);
          log.warn({ err: coerceError(err), reason, attempt, delayMs, messages: messages.length }, 'batch rolled back, retrying');
        },
      });
    } finally {
      // Written, given up on stop, or failed on its data: either way no longer a sign the dependency is down.
      const wasRetrying = retrying.delete(write);
      if (wasRetrying && retrying.size === 0 && !stopping.signal.aborted) log.info({ queue: queues.join(', ') }, 'dependency available again: consuming resumed');
    }
    for (const { delivery } of entries) {
      delivery.ack();
      messagesConsumed.inc({ queue: delivery.queue });
    }
    options.onWritten?.(result, messages.length, Date.now() - started);
  };

  /** Fails on its own data: it can never be written, dead-letter it. Anything else (we are stopping): requeue. */
  const settleFailed = async (entries: Array<{ delivery: Delivery }>, err: unknown): Promise<void> => {
    if (!isMessageFault(err)) {
      log.warn({ err: coerceError(err), messages: entries.length }, 'batch not written before stopping, requeueing it');
      for (const { delivery } of entries) delivery.requeue();
      return;
    }
    for (const { delivery } of entries) await deadLetter(options.publisher, delivery, `write failed: ${coerceError(err).message}`, log);
  };

  const maxInFlight = options.maxInFlight ?? 1;
  const { keysOf } = options;
  const batcher = createBatcher<Entry>({
    maxSize: options.batchSize,
    lingerMs: options.lingerMs,
    flush,
    maxInFlight,
    keysOf: keysOf === undefined ? undefined : (entry) => keysOf(entry.message),
  });
  const consumer = await startConsumer(bus, {
    name: options.name,
    log,
    queues,
    // Room for the next batch to fill while the ones in flight are written (more than enough when messages weigh more than 1).
    prefetch: options.batchSize * (maxInFlight + 1),
    setup: options.setup ?? declareCoreTopology,
    onDelivery: receive,
  });

  let stopped: Promise<void> | undefined;
  return {
    health,
    stop() {
      stopped ??= (async () => {
        await consumer.cancel();
        // Before draining: a batch retrying against an unavailable database gives up and is requeued.
        stopping.abort();
        await batcher.drain();
        await rejections.settled();
        await consumer.close();
      })();
      return stopped;
    },
  };
}
