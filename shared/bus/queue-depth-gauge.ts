/**
 * virtsync_queue_messages{queue}: messages waiting in a queue (ready, not yet delivered), asked
 * of the broker at scrape time. A scrape must not hang or fail on the broker: an answer
 * later than `timeoutMs`, or an error, leaves the last value and is logged.
 */
import type { ChannelWrapper } from 'amqp-connection-manager';
import { Gauge, type Registry } from 'prom-client';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logging.ts';

export function registerQueueDepthGauge(options: {
  registry: Registry;
  channel: ChannelWrapper;
  queues: readonly string[];
  log: Logger;
  timeoutMs?: number;
}): void {
  const timeoutMs = options.timeoutMs ?? 2_000;
  const log = options.log.child({ component: 'queue-depth' });
  new Gauge({
    name: 'virtsync_queue_messages',
    help: 'Messages waiting in the queue, as the broker reported at scrape time',
    labelNames: ['queue'] as const,
    registers: [options.registry],
    async collect() {
      for (const queue of options.queues) {
        try {
          const { messageCount } = await withTimeout(options.channel.checkQueue(queue), timeoutMs);
          this.set({ queue }, messageCount);
        } catch (err) {
          log.warn({ err: coerceError(err), queue }, 'queue depth not read, keeping the last value');
        }
      }
    },
  });
}

async function withTimeout<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}
