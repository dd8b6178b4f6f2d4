/**
 * What the agent publishes about domains, confirmed by the broker before the promise
 * resolves: observations (a host's at a time, split only past MAX_OBSERVATIONS_PER_MESSAGE;
 * a lifecycle event's under their own routing key, to the writer's event queue) and one
 * report per domain no row places on the host.
 */
import { randomUUID } from 'node:crypto';
import { publishJson, type Publisher } from '../../shared/bus/publisher.ts';
import { Exchange, observationsRoutingKeyFor, unknownDomainRoutingKey } from '../../shared/bus/topology.ts';
import { encodeMessage } from '../../shared/messages/codec.ts';
import { SCHEMA_VERSION } from '../../shared/messages/fields.ts';
import { groupObservations, hostObservationsSchema, type Observation } from '../../shared/messages/observation.ts';
import { type UnknownDomain, unknownDomainSchema } from '../../shared/messages/unknown-domain.ts';

export interface AgentPublications {
  observations(observations: ReadonlyArray<Omit<Observation, 'observationId'>>): Promise<unknown>;
  unknownDomain(unknown: Omit<UnknownDomain, 'schemaVersion'>): Promise<void>;
}

/** `publishAs`: the agent's broker user, stamped as AMQP user_id (the broker vouches for it, the writer checks it against the host). */
export function createAgentPublications(publisher: Publisher, publishAs?: string): AgentPublications {
  return {
    observations: (observations) =>
      Promise.all(
        groupObservations(observations.map((observation) => ({ observationId: randomUUID(), ...observation }))).map((message) =>
          publishJson(publisher, Exchange.observations, observationsRoutingKeyFor(message.trigger, message.host), encodeMessage(hostObservationsSchema, message), {
            messageId: randomUUID(),
            type: 'host-observations',
            userId: publishAs,
          }),
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
