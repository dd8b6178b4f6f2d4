/**
 * `virtsync tail`: follows committed changes on `virtsync.changes` through an exclusive,
 * auto-deleted queue of its own, bound with `instance.<host>.<state>` (`*` for any).
 * Readable lines or JSON lines on stdout; notes on stderr. Stops on SIGINT/SIGTERM, or
 * after --count events. The channel re-declares its queue after a reconnect; changes
 * published while disconnected are not seen (the audit log has them all).
 */
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import type { ConsumeMessage } from 'amqplib';
import { declareCoreTopology, Exchange } from '../../shared/bus/topology.ts';
import { hostRoutingWord } from '../../shared/host-name.ts';
import { type ChangeEvent, changeEventSchema } from '../../shared/messages/change-event.ts';
import { parseMessage } from '../../shared/messages/codec.ts';
import { type PowerState, powerStateKey } from '../../shared/power-state.ts';
import { parseHostName, parsePowerStateKey, wholeNumber } from './argument-parsers.ts';
import type { CliContext } from './cli-context.ts';
import { formatChangeLine } from './format-change.ts';

interface TailOptions {
  host?: string;
  state?: PowerState;
  json?: boolean;
  count?: number;
}

/** The binding for changeRoutingKey(host, state), with `*` for what is not filtered. */
export function changeBindingPattern(host: string | undefined, state: PowerState | undefined): string {
  return `instance.${host === undefined ? '*' : hostRoutingWord(host)}.${state === undefined ? '*' : powerStateKey(state)}`;
}

export function registerTailCommand(program: Command, context: CliContext): void {
  program
    .command('tail')
    .description('follow committed change events as they happen, one line each; Ctrl-C stops')
    .option('--host <host>', 'only changes of instances on this host', parseHostName)
    .option('--state <state>', 'only changes to this power state (running, shutoff, paused, crashed, nostate, …)', parsePowerStateKey)
    .option('--json', 'print each event as one JSON line (the change-event contract)')
    .option('--count <n>', 'exit after this many events', wholeNumber(1))
    .action(async (options: TailOptions) => {
      const bus = await context.bus();
      const pattern = changeBindingPattern(options.host, options.state);
      const queue = `virtsync.cli.tail.${randomBytes(6).toString('hex')}`;
      let seen = 0;
      let finish: () => void = () => undefined;
      let fail: (err: unknown) => void = () => undefined;
      const finished = new Promise<void>((resolve, reject) => {
        finish = resolve;
        fail = reject;
      });

      const onMessage = (message: ConsumeMessage | null): void => {
        if (message === null || (options.count !== undefined && seen >= options.count)) return;
        const parsed = parseMessage(changeEventSchema, message.content);
        if (!parsed.ok) {
          context.note(`skipped a change event that does not parse: ${parsed.reason}`);
          return;
        }
        // Two host names can share a routing word (a.b and a_b): compare the real name too.
        if (options.host !== undefined && parsed.value.host !== options.host) return;
        seen++;
        context.print(options.json === true ? JSON.stringify(parsed.value) : describe(parsed.value));
        if (options.count !== undefined && seen >= options.count) finish();
      };

      const channel = bus.createChannel({
        name: 'cli.tail',
        setup: async (ch: Parameters<typeof declareCoreTopology>[0]) => {
          await declareCoreTopology(ch);
          await ch.assertQueue(queue, { exclusive: true, autoDelete: true });
          await ch.bindQueue(queue, Exchange.changes, pattern);
        },
      });
      // A setup that fails (no permission on the vhost, say) would otherwise leave tail waiting forever.
      channel.on('error', (err: unknown) => fail(new Error('could not declare the tail queue', { cause: err })));
      const onSignal = (): void => finish();
      const onDisconnect = (): void => context.note('broker connection lost, reconnecting (changes published meanwhile are not shown)');
      const onReconnect = (): void => context.note('broker connection back, listening again');
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        await channel.consume(queue, onMessage, { noAck: true });
        await channel.waitForConnect();
        bus.on('disconnect', onDisconnect);
        bus.on('connect', onReconnect);
        context.note(`listening for changes on ${Exchange.changes} matching ${pattern}${options.count === undefined ? '; Ctrl-C stops' : `; exiting after ${options.count}`}`);
        await finished;
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        bus.off('disconnect', onDisconnect);
        bus.off('connect', onReconnect);
        await channel.close();
      }
    });
}

function describe(event: ChangeEvent): string {
  return formatChangeLine({ time: event.committedAt, instanceUuid: event.instanceUuid, host: event.host, rule: event.rule, before: event.before, after: event.after });
}
