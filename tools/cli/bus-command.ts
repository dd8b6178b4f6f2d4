/**
 * `virtsync bus setup`: declares the whole core topology (exchanges, queues, bindings) with
 * the operator's AMQP_URL, like `migrate` for the database. Idempotent. Services started with
 * BUS_TOPOLOGY=verify only check it exists, and so need no configure permission.
 */
import type { Command } from 'commander';
import type { Channel } from 'amqplib';
import { declareCoreTopology } from '../../shared/bus/topology.ts';
import type { CliContext } from './cli-context.ts';
import { describeTarget } from './cli-errors.ts';

export function registerBusCommand(program: Command, context: CliContext): void {
  const bus = program.command('bus').description('provision the message bus');
  bus
    .command('setup')
    .description('declare every exchange, queue and binding (needs a broker user with configure permission); safe to re-run')
    .action(async () => {
      await withOperatorChannel(context, declareCoreTopology);
      context.print(`bus topology declared at ${describeTarget(context.config().amqpUrl)}`);
    });
}

/** Runs `work` on a channel of the operator's connection, and waits for it to finish. */
export async function withOperatorChannel(context: CliContext, work: (channel: Channel) => Promise<void>): Promise<void> {
  const connection = await context.bus();
  let failure: unknown;
  const channel = connection.createChannel({
    name: 'cli.provision',
    setup: (ch: Channel) =>
      work(ch).catch((err: unknown) => {
        failure = err;
      }),
  });
  await channel.waitForConnect();
  await channel.close();
  if (failure !== undefined) throw failure;
}
