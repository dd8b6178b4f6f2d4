/** Deletes the demo's queues so a run starts from an empty bus (the exchanges are harmless to keep). */
import amqplib from 'amqplib';
import { Queue, tickQueue } from '../../shared/bus/topology.ts';

export async function resetBus(amqpUrl: string, hosts: readonly string[]): Promise<void> {
  const connection = await amqplib.connect(amqpUrl);
  try {
    const channel = await connection.createChannel();
    for (const queue of [...Object.values(Queue), ...hosts.map(tickQueue)]) await channel.deleteQueue(queue);
    await channel.close();
  } finally {
    await connection.close();
  }
}
