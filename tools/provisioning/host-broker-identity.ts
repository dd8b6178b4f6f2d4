/**
 * A host's identity on the bus: a broker user named after the host (it logs in with a client
 * certificate whose CN is the host, so it has no password), allowed exactly what its agent
 * needs: read its own tick queue, write observations and reports, and, through topic
 * permissions, only under its own host's routing keys. No configure permission: it cannot
 * declare, delete or rebind anything, and no write on the dead-letter exchange.
 */
import { eventObservationRoutingKey, Exchange, observationRoutingKey, reportRoutingKey, tickQueue, unknownDomainRoutingKey } from '../../shared/bus/topology.ts';
import type { BrokerManagement } from './broker-management.ts';

const escape = (text: string): string => text.replaceAll(/[.*+?^${}()|[\]\\]/g, '\\$&');
const exactly = (...names: string[]): string => `^(${names.map(escape).join('|')})$`;

/** The permissions of a host's agent user in its vhost (exported for docs and tests). */
export function hostPermissions(host: string) {
  return {
    permissions: { configure: '^$', write: exactly(Exchange.observations, Exchange.reports), read: exactly(tickQueue(host)) },
    topicPermissions: [
      { exchange: Exchange.observations, write: exactly(observationRoutingKey(host), eventObservationRoutingKey(host)), read: '^$' },
      { exchange: Exchange.reports, write: exactly(reportRoutingKey(host), unknownDomainRoutingKey(host)), read: '^$' },
    ],
  };
}

const path = (...parts: string[]): string => `/${parts.map(encodeURIComponent).join('/')}`;

export async function grantHostBrokerIdentity(management: BrokerManagement, vhost: string, host: string): Promise<void> {
  const { permissions, topicPermissions } = hostPermissions(host);
  // An empty password hash: no password login, only the certificate (EXTERNAL).
  await management.put(path('users', host), { password_hash: '', tags: '' });
  await management.put(path('permissions', vhost, host), permissions);
  for (const topic of topicPermissions) await management.put(path('topic-permissions', vhost, host), topic);
}

/** Deleting the user deletes its permissions and topic permissions with it: its certificate can no longer log in. */
export async function revokeHostBrokerIdentity(management: BrokerManagement, host: string): Promise<void> {
  await management.delete(path('users', host));
}
