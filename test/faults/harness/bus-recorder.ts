/**
 * What a fault test sees of the bus, independent of the services: one queue of its own
 * bound to every host's ticks, every observation, every host report and every change
 * event. The queue is a durable quorum queue and the connection reopens itself (across
 * a cluster's nodes), so the record survives a broker restart or a killed node; a
 * redelivery of a message already recorded is not recorded twice. Its connection's name
 * does not start with "virtsync ", so closing the services' connections never closes it.
 */
import { randomBytes } from 'node:crypto';
import amqp from 'amqp-connection-manager';
import type { Channel, ConsumeMessage } from 'amqplib';
import { brokerUrls } from '../../../shared/bus/broker-urls.ts';
import { declareCoreTopology, Exchange } from '../../../shared/bus/topology.ts';
import { type ChangeEvent, changeEventSchema } from '../../../shared/messages/change-event.ts';
import { parseMessage } from '../../../shared/messages/codec.ts';
import { type HostReport, hostReportSchema } from '../../../shared/messages/host-report.ts';
import { hostObservationsSchema, type Observation, observationsOf } from '../../../shared/messages/observation.ts';
import { type Tick, tickSchema } from '../../../shared/messages/tick.ts';

export interface BusRecorder {
  ticks: Tick[];
  /** Valid observations the broker routed to the observations exchange, taken out of their messages (the writer's two queues get the same). */
  observations: Observation[];
  reports: HostReport[];
  /** Valid change events, every publish (a republished event appears twice, with one eventId). */
  changes: ChangeEvent[];
  /** Messages on these exchanges that failed validation (a fault test may inject some on purpose). */
  invalid: number;
  close(): Promise<void>;
}

export async function recordBus(amqpUrl: string, hosts: readonly string[]): Promise<BusRecorder> {
  const queue = `fault-recorder.${randomBytes(4).toString('hex')}`;
  const connection = amqp.connect(brokerUrls(amqpUrl), {
    heartbeatIntervalInSeconds: 5,
    reconnectTimeInSeconds: 0.5,
    connectionOptions: { clientProperties: { connection_name: 'fault-test recorder' } },
  });
  const seen = new Set<string>();
  const channel = connection.createChannel({
    setup: async (ch: Channel) => {
      await declareCoreTopology(ch);
      await ch.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
      for (const host of hosts) await ch.bindQueue(queue, Exchange.ticks, host);
      await ch.bindQueue(queue, Exchange.observations, 'observation.#');
      await ch.bindQueue(queue, Exchange.observations, 'event-observation.#');
      await ch.bindQueue(queue, Exchange.reports, 'report.#');
      await ch.bindQueue(queue, Exchange.changes, 'instance.#');
      await ch.prefetch(1_000);
      await ch.consume(queue, (message) => {
        if (message === null) return;
        const id = message.properties.messageId;
        const again = message.fields.redelivered && typeof id === 'string' && seen.has(id);
        if (typeof id === 'string') seen.add(id);
        if (!again) onMessage(message);
        ch.ack(message);
      });
    },
  });
  const recorder: BusRecorder = {
    ticks: [],
    observations: [],
    reports: [],
    changes: [],
    invalid: 0,
    close: async () => {
      await channel.addSetup((ch: Channel) => ch.deleteQueue(queue)).catch(() => undefined);
      await channel.close();
      await connection.close();
    },
  };
  const keep = <T>(list: T[], parsed: { ok: true; value: T } | { ok: false }): void => {
    if (parsed.ok) list.push(parsed.value);
    else recorder.invalid++;
  };
  function onMessage(message: ConsumeMessage): void {
    switch (message.fields.exchange) {
      case Exchange.ticks:
        return keep(recorder.ticks, parseMessage(tickSchema, message.content));
      case Exchange.observations: {
        const parsed = parseMessage(hostObservationsSchema, message.content);
        if (parsed.ok) recorder.observations.push(...observationsOf(parsed.value));
        else recorder.invalid++;
        return;
      }
      case Exchange.reports:
        return keep(recorder.reports, parseMessage(hostReportSchema, message.content));
      case Exchange.changes:
        return keep(recorder.changes, parseMessage(changeEventSchema, message.content));
      default:
        recorder.invalid++;
    }
  }
  await channel.waitForConnect();
  return recorder;
}
