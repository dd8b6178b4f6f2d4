/**
 * What a fault test sees of the bus, independent of the services: one exclusive queue of
 * its own bound to every host's ticks, every observation, every host report and every
 * change event. Its connection has no `connection_name`, so closing the services'
 * connections (which all carry one starting with "virtsync ") never closes it.
 */
import amqplib, { type ChannelModel, type ConsumeMessage } from 'amqplib';
import { declareCoreTopology, Exchange } from '../../../shared/bus/topology.ts';
import { type ChangeEvent, changeEventSchema } from '../../../shared/messages/change-event.ts';
import { parseMessage } from '../../../shared/messages/codec.ts';
import { type HostReport, hostReportSchema } from '../../../shared/messages/host-report.ts';
import { hostObservationsSchema, type Observation, observationsOf } from '../../../shared/messages/observation.ts';
import { type Tick, tickSchema } from '../../../shared/messages/tick.ts';

export interface BusRecorder {
  ticks: Tick[];
  /** Valid observations the broker routed to the observations exchange, taken out of their messages (the writer's queue gets the same). */
  observations: Observation[];
  reports: HostReport[];
  /** Valid change events, every delivery (a republished event appears twice, with one eventId). */
  changes: ChangeEvent[];
  /** Messages on these exchanges that failed validation (a fault test may inject some on purpose). */
  invalid: number;
  close(): Promise<void>;
}

export async function recordBus(amqpUrl: string, hosts: readonly string[]): Promise<BusRecorder> {
  const connection: ChannelModel = await amqplib.connect(amqpUrl);
  const channel = await connection.createChannel();
  await declareCoreTopology(channel);
  const recorder: BusRecorder = {
    ticks: [],
    observations: [],
    reports: [],
    changes: [],
    invalid: 0,
    close: async () => {
      await channel.close();
      await connection.close();
    },
  };
  const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true });
  for (const host of hosts) await channel.bindQueue(queue, Exchange.ticks, host);
  await channel.bindQueue(queue, Exchange.observations, 'observation.#');
  await channel.bindQueue(queue, Exchange.reports, 'report.#');
  await channel.bindQueue(queue, Exchange.changes, 'instance.#');

  const keep = <T>(list: T[], parsed: { ok: true; value: T } | { ok: false }): void => {
    if (parsed.ok) list.push(parsed.value);
    else recorder.invalid++;
  };
  const onMessage = (message: ConsumeMessage | null): void => {
    if (message === null) return;
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
  };
  await channel.consume(queue, onMessage, { noAck: true });
  return recorder;
}
