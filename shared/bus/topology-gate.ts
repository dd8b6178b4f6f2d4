/**
 * Waiting for a provisioned topology. With BUS_TOPOLOGY=verify a service declares nothing;
 * until `virtsync bus setup` (and `hosts add` for a host's tick queue) has run, it logs
 * what is missing, stays unready (it has not started) and checks again.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Channel } from 'amqplib';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logging.ts';
import type { BusConnection } from './connect.ts';

export async function awaitTopology(
  bus: BusConnection,
  options: { what: string; check: (channel: Channel) => Promise<void>; log: Logger; retryMs?: number },
): Promise<void> {
  const log = options.log.child({ component: 'topology-gate' });
  for (let attempt = 1; ; attempt += 1) {
    const connection = bus.connection;
    if (connection !== undefined) {
      // A failed passive check closes its channel (404): each attempt gets a fresh one.
      const channel = await connection.createChannel();
      channel.on('error', () => undefined);
      try {
        await options.check(channel);
        await channel.close();
        log.info({ what: options.what }, 'bus topology present');
        return;
      } catch (err) {
        log.warn({ err: coerceError(err), what: options.what, attempt }, 'bus topology missing: run `virtsync bus setup` (and `virtsync hosts add` for a host)');
      }
    }
    await sleep(options.retryMs ?? 2_000);
  }
}
