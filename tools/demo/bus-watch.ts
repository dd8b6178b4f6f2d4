/**
 * The demo's own downstream consumer: an exclusive, auto-deleted queue bound to host
 * reports and committed changes, so it sees what any subscriber would.
 */
import amqplib from 'amqplib';
import { Exchange } from '../../shared/bus/topology.ts';
import type { ChangeEvent } from '../../shared/messages/change-event.ts';
import { changeEventSchema } from '../../shared/messages/change-event.ts';
import { parseMessage } from '../../shared/messages/codec.ts';
import { type HostReport, hostReportSchema } from '../../shared/messages/host-report.ts';

export interface BusWatch {
  reports: HostReport[];
  changes: ChangeEvent[];
  /** Messages that failed validation: a demo with any is broken. */
  invalid: string[];
  close(): Promise<void>;
}

export async function watchBus(amqpUrl: string): Promise<BusWatch> {
  const connection = await amqplib.connect(amqpUrl);
  const channel = await connection.createChannel();
  await channel.assertExchange(Exchange.reports, 'topic', { durable: true });
  await channel.assertExchange(Exchange.changes, 'topic', { durable: true });
  const watch: BusWatch = {
    reports: [],
    changes: [],
    invalid: [],
    close: async () => {
      await channel.close();
      await connection.close();
    },
  };
  const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true });
  await channel.bindQueue(queue, Exchange.reports, 'report.#');
  await channel.bindQueue(queue, Exchange.changes, 'instance.#');
  await channel.consume(
    queue,
    (message) => {
      if (message === null) return;
      if (message.fields.exchange === Exchange.reports) {
        const parsed = parseMessage(hostReportSchema, message.content);
        if (parsed.ok) watch.reports.push(parsed.value);
        else watch.invalid.push(parsed.reason);
      } else {
        const parsed = parseMessage(changeEventSchema, message.content);
        if (parsed.ok) watch.changes.push(parsed.value);
        else watch.invalid.push(parsed.reason);
      }
    },
    { noAck: true },
  );
  return watch;
}
