/**
 * `virtsync dlq list` and `virtsync dlq replay <messageId> | --all [--dry-run]`: what is in
 * the dead-letter queue, who put it there and why, and the way back. The queue is read by
 * taking every message unacked (so nothing else sees it meanwhile) and giving back what is
 * not replayed. A message is replayed only if the broker or a virtsync consumer dead-lettered
 * it and it passes its queue's contract again (shared/bus/dead-letter-origin.ts); it is
 * published to the exchange it first came through, with its routing key, and removed from
 * the dead-letter queue only after the broker confirmed the republish.
 */
import type { Command } from 'commander';
import type { ChannelWrapper } from 'amqp-connection-manager';
import type { GetMessage } from 'amqplib';
import { type DeadLetterOrigin, deadLetterOrigin, type ReplayDecision, replayDecision } from '../../shared/bus/dead-letter-origin.ts';
import { declareCoreTopology, ORIGIN_EXCHANGE_HEADER, ORIGIN_QUEUE_HEADER, ORIGIN_ROUTING_KEY_HEADER, Queue, REASON_HEADER } from '../../shared/bus/topology.ts';
import { wholeNumber } from './argument-parsers.ts';
import type { CliContext } from './cli-context.ts';
import { NotFoundError, UsageError } from './cli-errors.ts';
import { renderTable } from './text-table.ts';

interface DeadLetter {
  message: GetMessage;
  messageId: string | undefined;
  origin: DeadLetterOrigin;
  decision: ReplayDecision;
}

/** Headers that describe the dead-lettering, not the message: dropped on replay. */
const DEATH_HEADERS = new Set(['x-death', 'x-first-death-exchange', 'x-first-death-queue', 'x-first-death-reason', 'x-last-death-exchange', 'x-last-death-queue', 'x-last-death-reason', 'x-delivery-count', REASON_HEADER, ORIGIN_QUEUE_HEADER, ORIGIN_EXCHANGE_HEADER, ORIGIN_ROUTING_KEY_HEADER]);

export function registerDlqCommand(program: Command, context: CliContext): void {
  const dlq = program.command('dlq').description(`inspect and replay ${Queue.deadLetter}`);

  dlq
    .command('list')
    .description('every dead-lettered message: who dead-lettered it (virtsync, broker, unknown), from which queue, why, and whether replay would take it')
    .option('--json', 'one JSON document')
    .option('--limit <n>', 'look at the first n messages only', wholeNumber(1), 10_000)
    .action(async (options: { json?: boolean; limit: number }) => {
      await withDeadLetters(context, options.limit, async (letters) => {
        context.print(options.json === true ? JSON.stringify(letters.map(describe), null, 2) : formatList(letters));
        return [];
      });
    });

  dlq
    .command('replay')
    .description('republish dead-lettered messages to the exchange they came through (with confirms), after validating them again')
    .argument('[messageId]', 'the message to replay (see `virtsync dlq list`)')
    .option('--all', 'every replayable message')
    .option('--dry-run', 'say what would be replayed, change nothing')
    .action(async (messageId: string | undefined, options: { all?: boolean; dryRun?: boolean }) => {
      if ((messageId === undefined) === (options.all !== true)) throw new UsageError('give one messageId or --all');
      await withDeadLetters(context, Number.POSITIVE_INFINITY, async (letters, channel) => {
        const chosen = options.all === true ? letters : letters.filter((letter) => letter.messageId === messageId);
        if (chosen.length === 0) throw new NotFoundError(`no message ${messageId} in ${Queue.deadLetter}`);
        const replayed: DeadLetter[] = [];
        for (const letter of chosen) {
          if (!letter.decision.replay) {
            context.note(`skipped ${letter.messageId ?? '(no id)'}: ${letter.decision.why}`);
            continue;
          }
          const { exchange, routingKey } = letter.decision;
          if (options.dryRun !== true) await republish(channel, letter.message, exchange, routingKey);
          replayed.push(letter);
          context.print(`${options.dryRun === true ? 'would replay' : 'replayed'} ${letter.messageId ?? '(no id)'} to ${exchange || '(default exchange)'} ${routingKey}`);
        }
        context.print(`${replayed.length} of ${chosen.length} ${options.dryRun === true ? 'would be ' : ''}replayed`);
        if (messageId !== undefined && replayed.length === 0) throw new Error(`message ${messageId} is not replayable`);
        return options.dryRun === true ? [] : replayed;
      });
    });
}

/**
 * Takes up to `limit` messages unacked, lets `work` decide, acks what it returns (done with)
 * and gives every other message back to the queue.
 */
async function withDeadLetters(
  context: CliContext,
  limit: number,
  work: (letters: DeadLetter[], channel: ChannelWrapper) => Promise<DeadLetter[]>,
): Promise<void> {
  const bus = await context.bus();
  const channel = bus.createChannel({ name: 'cli.dlq', confirm: true, setup: declareCoreTopology });
  const taken: DeadLetter[] = [];
  let done: DeadLetter[] = [];
  try {
    await channel.waitForConnect();
    while (taken.length < limit) {
      const message = await channel.get(Queue.deadLetter);
      if (message === false) break;
      const origin = deadLetterOrigin(message.properties.headers);
      taken.push({ message, messageId: message.properties.messageId, origin, decision: replayDecision(origin, message.content) });
    }
    done = await work(taken, channel);
  } finally {
    const finished = new Set(done);
    for (const letter of taken) {
      if (finished.has(letter)) channel.ack(letter.message);
      else channel.nack(letter.message, false, true);
    }
    await channel.close();
  }
}

async function republish(channel: ChannelWrapper, message: GetMessage, exchange: string, routingKey: string): Promise<void> {
  const headers = Object.fromEntries(Object.entries(message.properties.headers ?? {}).filter(([name]) => !DEATH_HEADERS.has(name)));
  // Resolves on the broker's confirm: only then is the dead letter acked (removed).
  await channel.publish(exchange, routingKey, message.content, {
    persistent: true,
    contentType: message.properties.contentType,
    messageId: message.properties.messageId,
    type: message.properties.type,
    timestamp: message.properties.timestamp,
    headers: { ...headers, 'x-virtsync-replayed-at': new Date().toISOString() },
  });
}

function describe(letter: DeadLetter) {
  return {
    messageId: letter.messageId ?? null,
    type: letter.message.properties.type ?? null,
    deadLetteredBy: letter.origin.by,
    queue: letter.origin.by === 'unknown' ? null : letter.origin.queue,
    exchange: letter.origin.by === 'unknown' ? null : letter.origin.exchange,
    routingKey: letter.origin.by === 'unknown' ? null : letter.origin.routingKey,
    reason: letter.origin.reason,
    replayable: letter.decision.replay,
    ...(letter.decision.replay ? {} : { notReplayableBecause: letter.decision.why }),
  };
}

function formatList(letters: DeadLetter[]): string {
  if (letters.length === 0) return `${Queue.deadLetter} is empty`;
  const rows = letters.map((letter) => [
    letter.messageId ?? '(no id)',
    letter.origin.by,
    letter.origin.by === 'unknown' ? '-' : letter.origin.queue,
    letter.origin.reason.slice(0, 60),
    letter.decision.replay ? 'yes' : `no: ${letter.decision.why.slice(0, 60)}`,
  ]);
  return `${renderTable(['message id', 'by', 'queue', 'reason', 'replayable'], rows)}\n${letters.length} message(s)`;
}
