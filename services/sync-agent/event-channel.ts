/**
 * The channel a lifecycle event's observations are published on, apart from everything else the
 * agent publishes. A host whose broker user predates the event key (its topic permission not
 * renewed by `virtsync hosts add` after an upgrade, docs/operations.md) is refused by the broker,
 * which closes the channel. On a channel of its own, with its error handled here, that closes
 * nothing else (amqplib would otherwise take the whole connection down, and with it every host
 * sync, at each event); the agent then sends its events the previous release's way
 * (agent-publications.ts) until it is restarted.
 */
import type { Channel } from 'amqplib';
import type { BusConnection } from '../../shared/bus/connect.ts';
import { createPublisher, type Publisher } from '../../shared/bus/publisher.ts';
import type { Logger } from '../../shared/logging.ts';

export interface EventChannel {
  publisher: Publisher;
  /** The broker closed the channel: publish events the previous release's way. */
  refused(): boolean;
}

export function createEventChannel(bus: BusConnection, options: { log: Logger; setup: (channel: Channel) => Promise<void> }): EventChannel {
  let refused = false;
  const publisher = createPublisher(bus, {
    name: 'sync-agent.publish-events',
    log: options.log,
    setup: async (channel) => {
      channel.on('error', (err: unknown) => {
        if (refused) return;
        refused = true;
        options.log.error(
          { err, hint: 'run `virtsync hosts add <host>` for this host (it renews the topic permission), then restart the agent' },
          'broker refused the event observations channel: lifecycle events now go through the host syncs\' queue, without their head start',
        );
        // Rejects what waits on the closed channel, so its publisher sends it the other way at once.
        void publisher.close();
      });
      await options.setup(channel);
    },
  });
  return { publisher, refused: () => refused };
}
