/**
 * Declares a durable queue without letting an older deployment's queue arguments break
 * the service. RabbitMQ refuses a declaration whose arguments differ from the existing
 * queue's with 406 PRECONDITION_FAILED and closes the channel, which would leave every
 * channel that declares the topology dead. So, on a connection made by connectBus, each
 * queue is declared on a scratch channel first: a 406 there means the queue exists with
 * other (legacy) arguments; it is used as it is and reported, and the real channel never
 * sees the error. docs/operations.md, "Upgrading deployed queues", says how to recreate it.
 */
import type { Channel, ChannelModel, Options } from 'amqplib';

type LegacyQueueReport = (queue: string, detail: string) => void;

/** Connections made by connectBus, by the amqplib connection their channels share. */
const connections = new WeakMap<object, { model: ChannelModel; onLegacyQueue: LegacyQueueReport }>();

export function registerConnection(model: ChannelModel, onLegacyQueue: LegacyQueueReport): void {
  connections.set(model.connection, { model, onLegacyQueue });
}

function isPreconditionFailed(err: unknown): boolean {
  return err instanceof Error && Reflect.get(err, 'code') === 406;
}

/**
 * Declares each queue; on a registered connection a queue that exists with other
 * arguments is kept as it is. Returns the names of such legacy queues.
 */
export async function declareDurableQueues(channel: Channel, queues: ReadonlyArray<{ name: string; options: Options.AssertQueue }>): Promise<string[]> {
  const registered = connections.get(channel.connection);
  if (registered === undefined) {
    for (const { name, options } of queues) await channel.assertQueue(name, options);
    return [];
  }
  const legacy: string[] = [];
  let scratch: Channel | undefined;
  try {
    for (const { name, options } of queues) {
      scratch ??= await openScratch(registered.model);
      try {
        await scratch.assertQueue(name, options);
      } catch (err) {
        if (!isPreconditionFailed(err)) throw err;
        scratch = undefined; // the broker closed it
        legacy.push(name);
        registered.onLegacyQueue(name, err instanceof Error ? err.message : String(err));
      }
    }
  } finally {
    await scratch?.close().catch(() => undefined);
  }
  return legacy;
}

async function openScratch(model: ChannelModel): Promise<Channel> {
  const scratch = await model.createChannel();
  // A 406 closes it with an 'error' event; the declaration's rejection is what we act on.
  scratch.on('error', () => undefined);
  return scratch;
}
