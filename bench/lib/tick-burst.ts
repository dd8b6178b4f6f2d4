import { randomUUID } from 'node:crypto';
import amqplib from 'amqplib';
import { Exchange } from '../../shared/bus/topology.ts';
import { encodeMessage } from '../../shared/messages/codec.ts';
import { SCHEMA_VERSION } from '../../shared/messages/fields.ts';
import { type Tick, tickSchema } from '../../shared/messages/tick.ts';

/** Every host's tick at once, through a confirm channel: the agents' and writer's capacity without the producer's pacing. */
export async function publishTickBurst(amqpUrl: string, hosts: readonly string[]): Promise<void> {
  const connection = await amqplib.connect(amqpUrl);
  try {
    const channel = await connection.createConfirmChannel();
    const scheduledAt = new Date().toISOString();
    for (const host of hosts) {
      const tick: Tick = { schemaVersion: SCHEMA_VERSION, tickId: randomUUID(), host, cycle: 0, scheduledAt, trigger: 'manual' };
      channel.publish(Exchange.ticks, host, encodeMessage(tickSchema, tick), { persistent: true, contentType: 'application/json', type: 'tick' });
    }
    await channel.waitForConfirms();
    await channel.close();
  } finally {
    await connection.close();
  }
}
