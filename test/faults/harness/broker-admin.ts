/**
 * Forcing the services' broker connections closed through RabbitMQ's management API,
 * which is what `rabbitmqctl close_all_connections` does, limited to one vhost. The
 * broker itself is shared with every other test on this machine, so restarting it is
 * not something a test may do; closing every connection of the test's own vhost is the
 * same fault as seen from the services (each loses its connection and all its channels).
 *
 * The management API lists a new connection only after its next statistics round
 * (up to 5 s on a default broker), so callers wait for the connections they expect.
 */
import { z } from 'zod';
import { loadConfig, toolsEnv } from '../../../shared/config.ts';
import { waitFor } from '../../../tools/wait-for.ts';

const MANAGEMENT_URL = 'http://127.0.0.1:15672/api';

export interface BrokerConnection {
  name: string;
  /** What the client called itself: services use "virtsync <service>". */
  clientName: string | null;
}

function authorization(): string {
  const base = new URL(loadConfig(toolsEnv).amqpUrl);
  const user = decodeURIComponent(base.username || 'guest');
  const password = decodeURIComponent(base.password || 'guest');
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

const connectionListSchema = z.array(
  z.object({
    name: z.string(),
    client_properties: z.object({ connection_name: z.string().optional() }).partial().optional(),
  }),
);

export async function listConnections(vhost: string): Promise<BrokerConnection[]> {
  const response = await fetch(`${MANAGEMENT_URL}/vhosts/${encodeURIComponent(vhost)}/connections`, {
    headers: { authorization: authorization() },
  });
  if (!response.ok) throw new Error(`RabbitMQ management: listing connections: ${response.status} ${await response.text()}`);
  const parsed = connectionListSchema.safeParse(await response.json());
  if (!parsed.success) throw new Error(`RabbitMQ management: unexpected connection list: ${parsed.error.message}`);
  return parsed.data.map((entry) => ({ name: entry.name, clientName: entry.client_properties?.connection_name ?? null }));
}

/** Connections of virtsync services (not the test's own probes) in the vhost. */
export async function listServiceConnections(vhost: string): Promise<BrokerConnection[]> {
  return (await listConnections(vhost)).filter((connection) => connection.clientName?.startsWith('virtsync ') === true);
}

/**
 * Waits until at least `count` service connections not in `exclude` are listed, then
 * closes every service connection of the vhost. Returns the names it closed.
 */
export async function closeServiceConnections(
  vhost: string,
  options: { atLeast: number; exclude?: ReadonlySet<string>; timeoutMs: number },
): Promise<string[]> {
  const fresh = async (): Promise<BrokerConnection[]> =>
    (await listServiceConnections(vhost)).filter((connection) => !(options.exclude?.has(connection.name) ?? false));
  await waitFor(`${options.atLeast} service connections listed by the management API`, async () => (await fresh()).length >= options.atLeast, {
    timeoutMs: options.timeoutMs,
    intervalMs: 200,
  });
  const targets = await fresh();
  for (const connection of targets) {
    const response = await fetch(`${MANAGEMENT_URL}/connections/${encodeURIComponent(connection.name)}`, {
      method: 'DELETE',
      headers: { authorization: authorization(), 'x-reason': 'virtsync fault test: connection force-closed' },
    });
    // 404: it went away on its own meanwhile, which is the same outcome.
    if (!response.ok && response.status !== 404) {
      throw new Error(`RabbitMQ management: closing ${connection.name}: ${response.status} ${await response.text()}`);
    }
  }
  return targets.map((connection) => connection.name);
}
