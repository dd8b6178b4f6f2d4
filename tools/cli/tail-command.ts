/**
 * `virtsync tail`: follows committed changes on `virtsync.changes` through an exclusive,
 * auto-deleted queue of its own, bound with `instance.<host>.<state>` (`*` for any); with
 * --proposed, a report-only writer's proposals instead (`proposed.<host>.<state>`).
 * Readable lines or JSON lines on stdout; notes on stderr. Stops on SIGINT/SIGTERM, or
 * after --count events. The channel re-declares its queue after a reconnect; changes
 * published while disconnected are not seen (the audit log has them all; proposals are
 * kept nowhere but the outbox's retention).
 */
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import type { ConsumeMessage } from 'amqplib';
import { type ChangeKind, declareCoreTopology, Exchange } from '../../shared/bus/topology.ts';
import { hostRoutingWord } from '../../shared/host-name.ts';
import { type ChangeEvent, changeEventSchema } from '../../shared/messages/change-event.ts';
import { type ParseResult, parseMessage } from '../../shared/messages/codec.ts';
import { type ProposedChange, proposedChangeSchema } from '../../shared/messages/proposed-change.ts';
import { type PowerState, powerStateKey } from '../../shared/power-state.ts';
import { parseHostName, parsePowerStateKey, wholeNumber } from './argument-parsers.ts';
import type { CliContext } from './cli-context.ts';
import { formatChangeLine } from './format-change.ts';

interface TailOptions {
  host?: string;
  state?: PowerState;
  json?: boolean;
  count?: number;
  proposed?: boolean;
}

/** The binding for changeRoutingKey(host, state, kind), with `*` for what is not filtered. */
export function changeBindingPattern(host: string | undefined, state: PowerState | undefined, kind: ChangeKind = 'instance'): string {
  return `${kind}.${host === undefined ? '*' : hostRoutingWord(host)}.${state === undefined ? '*' : powerStateKey(state)}`;
}

/** One followed message, parsed against its own contract, with the moment it tells of (committed, or decided). */
interface Followed {
  event: ChangeEvent | ProposedChange;
  time: string;
}

function parseFollowed(kind: ChangeKind, content: Buffer): ParseResult<Followed> {
  if (kind === 'proposed') {
    const proposal = parseMessage(proposedChangeSchema, content);
    return proposal.ok ? { ok: true, value: { event: proposal.value, time: proposal.value.decidedAt } } : proposal;
  }
  const change = parseMessage(changeEventSchema, content);
  return change.ok ? { ok: true, value: { event: change.value, time: change.value.committedAt } } : change;
}

const FOLLOWED_NOUN: Record<ChangeKind, string> = { instance: 'changes', proposed: 'proposals' };

export function registerTailCommand(program: Command, context: CliContext): void {
  program
    .command('tail')
    .description('follow committed change events as they happen, one line each; Ctrl-C stops')
    .option('--proposed', "follow a report-only writer's proposals (WRITER_MODE=report-only) instead: what it would change, not written")
    .option('--host <host>', 'only changes of instances on this host', parseHostName)
    .option('--state <state>', 'only changes to this power state (running, shutoff, paused, crashed, nostate, …)', parsePowerStateKey)
    .option('--json', 'print each event as one JSON line (the change-event contract; proposed-change with --proposed)')
    .option('--count <n>', 'exit after this many events', wholeNumber(1))
    .action(async (options: TailOptions) => {
      const bus = await context.bus();
      const kind: ChangeKind = options.proposed === true ? 'proposed' : 'instance';
      const pattern = changeBindingPattern(options.host, options.state, kind);
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
        const parsed = parseFollowed(kind, message.content);
        if (!parsed.ok) {
          context.note(`skipped a message that does not parse: ${parsed.reason}`);
          return;
        }
        const { event, time } = parsed.value;
        // Two host names can share a routing word (a.b and a_b): compare the real name too.
        if (options.host !== undefined && event.host !== options.host) return;
        seen++;
        context.print(options.json === true ? JSON.stringify(event) : formatChangeLine({ ...event, time }));
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
        context.note(`listening for ${FOLLOWED_NOUN[kind]} on ${Exchange.changes} matching ${pattern}${options.count === undefined ? '; Ctrl-C stops' : `; exiting after ${options.count}`}`);
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
