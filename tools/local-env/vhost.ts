/**
 * A RabbitMQ virtual host of its own for one test file, through the management API
 * (.ci/run enables the plugin), deleted afterwards with everything in it.
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { loadConfig, toolsEnv } from '../../shared/config.ts';

/** The part of the management API's connection list we use. */
const connectionListSchema = z.array(z.object({ name: z.string() }));

const MANAGEMENT_URL = 'http://127.0.0.1:15672/api';

export interface TestVhost {
  name: string;
  amqpUrl: string;
  /** Force-closes every client connection to this vhost (what a broker blip looks like); returns how many. */
  closeConnections(): Promise<number>;
  delete(): Promise<void>;
}

async function management(method: string, path: string, auth: string, body?: unknown): Promise<unknown> {
  const response = await fetch(`${MANAGEMENT_URL}${path}`, {
    method,
    headers: { authorization: `Basic ${auth}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`RabbitMQ management ${method} ${path}: ${response.status} ${await response.text()}`);
  const text = await response.text();
  return text === '' ? undefined : JSON.parse(text);
}

export async function createTestVhost(): Promise<TestVhost> {
  const base = new URL(loadConfig(toolsEnv).amqpUrl);
  const user = decodeURIComponent(base.username || 'guest');
  const auth = Buffer.from(`${user}:${decodeURIComponent(base.password || 'guest')}`).toString('base64');
  const name = `virtsync-test-${randomBytes(4).toString('hex')}`;
  await management('PUT', `/vhosts/${name}`, auth);
  await management('PUT', `/permissions/${name}/${encodeURIComponent(user)}`, auth, { configure: '.*', write: '.*', read: '.*' });
  base.pathname = `/${name}`;
  return {
    name,
    amqpUrl: base.toString(),
    async closeConnections() {
      const connections = connectionListSchema.parse(await management('GET', `/vhosts/${name}/connections`, auth));
      for (const connection of connections) {
        await management('DELETE', `/connections/${encodeURIComponent(connection.name)}`, auth).catch(() => undefined);
      }
      return connections.length;
    },
    async delete() {
      await management('DELETE', `/vhosts/${name}`, auth);
    },
  };
}
