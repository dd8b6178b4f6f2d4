/**
 * The dead-letter queue seen from outside: its depth, read from the broker, exported as
 * `virtsync_dead_letter_queue_messages` and logged whenever it grows. This is how a message
 * the broker dead-lettered (a queue left with legacy arguments, an operator's policy) is seen
 * at all: virtsync's own rejects are also logged and counted where they happen
 * (shared/bus/dead-letter.ts), the broker's are not.
 */
import type { ChannelWrapper } from 'amqp-connection-manager';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logging.ts';
import { deadLetterQueueMessages } from '../metrics.ts';
import { Queue } from './topology.ts';

export interface DeadLetterWatch {
  /** Reads the depth now (the timer does it every intervalMs); returns it. */
  check(): Promise<number>;
  stop(): void;
}

export function startDeadLetterWatch(options: { channel: ChannelWrapper; log: Logger; intervalMs: number }): DeadLetterWatch {
  const log = options.log.child({ component: 'dead-letter-watch' });
  let last = 0;

  const check = async (): Promise<number> => {
    const { messageCount } = await options.channel.checkQueue(Queue.deadLetter);
    deadLetterQueueMessages.set(messageCount);
    if (messageCount > last) {
      log.warn({ queue: Queue.deadLetter, messages: messageCount, added: messageCount - last }, 'messages waiting in the dead-letter queue: see `virtsync dlq list`');
    }
    last = messageCount;
    return messageCount;
  };

  const timer = setInterval(() => {
    check().catch((err: unknown) => log.debug({ err: coerceError(err) }, 'dead-letter queue depth not read, trying on the next interval'));
  }, options.intervalMs);
  timer.unref();
  return { check, stop: () => clearInterval(timer) };
}
