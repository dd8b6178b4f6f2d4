/**
 * Publishes an immediate tick per host, as the tick producer would but with trigger
 * `manual` and cycle 0, through a confirm channel: it returns once the broker holds every
 * tick. A tick queue no agent consumes is named on stderr: the tick waits there until the
 * host's agent starts (or, when the caller asks, nothing is published if no host has an agent).
 */
import { randomUUID } from 'node:crypto';
import { createPublisher, publishJson } from '../../shared/bus/publisher.ts';
import { declareCoreTopology, declareTickQueue, Exchange, tickQueue } from '../../shared/bus/topology.ts';
import { encodeMessage } from '../../shared/messages/codec.ts';
import { SCHEMA_VERSION } from '../../shared/messages/fields.ts';
import { type Tick, tickSchema } from '../../shared/messages/tick.ts';
import type { CliContext } from './cli-context.ts';
import { FailedError } from './cli-errors.ts';

export async function publishManualTicks(
  context: CliContext,
  hosts: readonly string[],
  options: {
    onPublished?: (tick: Tick) => void;
    /** Refuse before publishing anything when no agent consumes any host's tick queue (nobody could answer). */
    requireAnAgent?: boolean;
  } = {},
): Promise<Tick[]> {
  const publisher = createPublisher(await context.bus(), {
    name: 'cli.sync',
    log: context.log(),
    setup: async (channel) => {
      await declareCoreTopology(channel);
      // The queue must exist before the tick is routed, or the tick is dropped.
      for (const host of hosts) await declareTickQueue(channel, host);
    },
  });
  const setupFailed = new Promise<never>((_resolve, reject) => {
    publisher.once('error', (err: unknown) => reject(new Error('could not declare the tick queues', { cause: err })));
  });
  const published: Tick[] = [];
  try {
    await Promise.race([publisher.waitForConnect(), setupFailed]);
    const unattended: string[] = [];
    for (const host of hosts) {
      const { consumerCount } = await publisher.checkQueue(tickQueue(host));
      if (consumerCount === 0) unattended.push(host);
    }
    if (options.requireAnAgent === true && unattended.length === hosts.length) {
      throw new FailedError(`no agent consumes the tick queue of ${hosts.length === 1 ? hosts[0] : `any of the ${hosts.length} hosts`}: nothing would report; start the agents first`);
    }
    for (const host of unattended) context.note(`warning: no agent consumes ${tickQueue(host)}: the tick waits there until ${host}'s agent runs`);
    for (const host of hosts) {
      const tick: Tick = { schemaVersion: SCHEMA_VERSION, tickId: randomUUID(), host, cycle: 0, scheduledAt: new Date().toISOString(), trigger: 'manual' };
      await publishJson(publisher, Exchange.ticks, host, encodeMessage(tickSchema, tick), { messageId: tick.tickId, type: 'tick' });
      published.push(tick);
      options.onPublished?.(tick);
    }
  } finally {
    await publisher.close();
  }
  return published;
}
