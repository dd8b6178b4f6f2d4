/**
 * What the agent publishes about domains, confirmed by the broker before the promise
 * resolves: observations (a host's at a time, split only past MAX_OBSERVATIONS_PER_MESSAGE;
 * a lifecycle event's under their own routing key, on their own channel, to the writer's event
 * queue) and one report per domain no row places on the host.
 */
import { randomUUID } from 'node:crypto';
import { publishJson, type Publisher } from '../../shared/bus/publisher.ts';
import { eventObservationRoutingKey, Exchange, observationRoutingKey, unknownDomainRoutingKey } from '../../shared/bus/topology.ts';
import { encodeMessage } from '../../shared/messages/codec.ts';
import { SCHEMA_VERSION } from '../../shared/messages/fields.ts';
import { groupObservations, type HostObservations, hostObservationsSchema, type Observation } from '../../shared/messages/observation.ts';
import { type UnknownDomain, unknownDomainSchema } from '../../shared/messages/unknown-domain.ts';
import type { EventChannel } from './event-channel.ts';

export interface AgentPublications {
  observations(observations: ReadonlyArray<Omit<Observation, 'observationId'>>): Promise<unknown>;
  unknownDomain(unknown: Omit<UnknownDomain, 'schemaVersion'>): Promise<void>;
}

/**
 * `publisher` carries everything but lifecycle events' observations, which go on `events`
 * unless the broker refused that channel (then under the tick key, as before the event queue).
 * `publishAs`: the agent's broker user, stamped as AMQP user_id (the broker vouches for it, the
 * writer checks it against the host).
 */
export function createAgentPublications(publisher: Publisher, events: EventChannel, publishAs?: string): AgentPublications {
  const send = (via: Publisher, routingKey: string, message: HostObservations): Promise<void> =>
    publishJson(via, Exchange.observations, routingKey, encodeMessage(hostObservationsSchema, message), { messageId: randomUUID(), type: 'host-observations', userId: publishAs });
  /** A host sync's observations, and events' when their channel was refused (the previous release's way). */
  const sendUnderTickKey = (message: HostObservations): Promise<void> => send(publisher, observationRoutingKey(message.host), message);
  const sendEvent = (message: HostObservations): Promise<void> => {
    if (events.refused()) return sendUnderTickKey(message);
    // Refused on the way (the channel closed under it): the broker routed none of it, send it the old way.
    return send(events.publisher, eventObservationRoutingKey(message.host), message).catch((err: unknown) => {
      if (!events.refused()) throw err;
      return sendUnderTickKey(message);
    });
  };
  return {
    observations: (observations) =>
      Promise.all(
        groupObservations(observations.map((observation) => ({ observationId: randomUUID(), ...observation }))).map((message) =>
          message.trigger === 'event' ? sendEvent(message) : sendUnderTickKey(message),
        ),
      ),
    unknownDomain: (unknown) =>
      publishJson(publisher, Exchange.reports, unknownDomainRoutingKey(unknown.host), encodeMessage(unknownDomainSchema, { schemaVersion: SCHEMA_VERSION, ...unknown }), {
        messageId: randomUUID(),
        type: 'unknown-domain',
        userId: publishAs,
      }),
  };
}
