import { Exchange, observationRoutingKey } from '../../shared/bus/topology.ts';
import { groupObservations, type Observation } from '../../shared/messages/observation.ts';
import type { BusProbe } from './bus-probe.ts';

/** Publishes observations the way agents do, grouped into host observations messages; returns how many messages. */
export function publishObservations(probe: BusProbe, observations: readonly Observation[]): number {
  const messages = groupObservations(observations);
  for (const message of messages) probe.publish(Exchange.observations, observationRoutingKey(message.host), message);
  return messages.length;
}
