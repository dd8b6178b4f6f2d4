/**
 * `virtsync sync <host>…`: an immediate tick per host, as the tick producer would
 * publish it but with trigger `manual` and cycle 0, through a confirm channel, so the
 * command returns only once the broker holds every tick.
 */
import { randomUUID } from 'node:crypto';
import { Argument, type Command } from 'commander';
import { createPublisher, publishJson } from '../../shared/bus/publisher.ts';
import { declareCoreTopology, declareTickQueue, Exchange, tickQueue } from '../../shared/bus/topology.ts';
import { listRegisteredHosts } from '../../shared/db/fleet-status.ts';
import { encodeMessage } from '../../shared/messages/codec.ts';
import { SCHEMA_VERSION } from '../../shared/messages/fields.ts';
import { type Tick, tickSchema } from '../../shared/messages/tick.ts';
import { collectHostName } from './argument-parsers.ts';
import type { CliContext } from './cli-context.ts';
import { UsageError } from './cli-errors.ts';

export function registerSyncCommand(program: Command, context: CliContext): void {
  program
    .command('sync')
    .description("publish an immediate tick for each host: the host's agent syncs it now instead of at its next slot")
    .addArgument(new Argument('<host...>', 'compute host names, as in compute_hosts').argParser(collectHostName))
    .option('--force', 'publish even for hosts with no compute_hosts row (skips the database check)')
    .option('--json', 'print the published ticks as JSON')
    .action(async (hosts: string[], options: { force?: boolean; json?: boolean }) => {
      const unique = [...new Set(hosts)];
      if (options.force !== true) await checkRegistered(context, unique);

      const bus = await context.bus();
      const publisher = createPublisher(bus, {
        name: 'cli.sync',
        log: context.log(),
        setup: async (channel) => {
          await declareCoreTopology(channel);
          // The queue must exist before the tick is routed, or the tick is dropped.
          for (const host of unique) await declareTickQueue(channel, host);
        },
      });
      const setupFailed = new Promise<never>((_resolve, reject) => {
        publisher.once('error', (err: unknown) => reject(new Error('could not declare the tick queues', { cause: err })));
      });
      const published: Tick[] = [];
      try {
        await Promise.race([publisher.waitForConnect(), setupFailed]);
        for (const host of unique) {
          const tick: Tick = { schemaVersion: SCHEMA_VERSION, tickId: randomUUID(), host, cycle: 0, scheduledAt: new Date().toISOString(), trigger: 'manual' };
          await publishJson(publisher, Exchange.ticks, host, encodeMessage(tickSchema, tick), { messageId: tick.tickId, type: 'tick' });
          published.push(tick);
          if (options.json !== true) context.print(`tick ${tick.tickId} published for ${host} (queue ${tickQueue(host)})`);
        }
      } finally {
        await publisher.close();
      }
      if (options.json === true) context.print(JSON.stringify(published, null, 2));
    });
}

/** A typo would otherwise declare a durable tick queue that no agent ever consumes. */
async function checkRegistered(context: CliContext, hosts: readonly string[]): Promise<void> {
  const registered = new Map((await listRegisteredHosts(await context.database())).map((row) => [row.host, row.enabled]));
  const unknown = hosts.filter((host) => !registered.has(host));
  if (unknown.length > 0) {
    throw new UsageError(`not in compute_hosts: ${unknown.join(', ')} (check the name, or pass --force to publish anyway)`);
  }
  for (const host of hosts.filter((name) => registered.get(name) === false)) {
    context.note(`note: ${host} is disabled in compute_hosts (no periodic ticks); publishing this manual tick anyway`);
  }
}
