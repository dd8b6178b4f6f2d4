import amqplib from 'amqplib';

/** Consumers of a queue, 0 while it does not exist (a connection of its own: a missing queue closes the channel that asked). */
export async function queueConsumers(amqpUrl: string, queue: string): Promise<number> {
  const connection = await amqplib.connect(amqpUrl);
  try {
    const channel = await connection.createChannel();
    channel.on('error', () => undefined);
    return await channel.checkQueue(queue).then((q) => q.consumerCount, () => 0);
  } finally {
    await connection.close().catch(() => undefined);
  }
}
