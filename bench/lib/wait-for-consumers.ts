/**
 * Waits until every queue named has a consumer: a service's "started" log line comes
 * before its consumers are attached when the broker connection is still being made.
 * A queue that does not exist yet closes the channel that asked; a new one is opened.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import amqplib, { type Channel } from 'amqplib';

export async function waitForConsumers(amqpUrl: string, queues: readonly string[], timeoutMs: number): Promise<void> {
  const connection = await amqplib.connect(amqpUrl);
  const open = async (): Promise<Channel> => {
    const channel = await connection.createChannel();
    channel.on('error', () => undefined); // 404 on a queue not declared yet: expected, handled below
    return channel;
  };
  try {
    const pending = new Set(queues);
    const deadline = Date.now() + timeoutMs;
    let channel = await open();
    while (pending.size > 0) {
      for (const queue of [...pending]) {
        try {
          if ((await channel.checkQueue(queue)).consumerCount > 0) pending.delete(queue);
        } catch {
          channel = await open();
          break;
        }
      }
      if (pending.size === 0) break;
      if (Date.now() > deadline) {
        throw new Error(`no consumer on ${pending.size} queue(s) after ${timeoutMs} ms, e.g. ${[...pending].slice(0, 3).join(', ')}`);
      }
      await sleep(200);
    }
    await channel.close().catch(() => undefined);
  } finally {
    await connection.close().catch(() => undefined);
  }
}
