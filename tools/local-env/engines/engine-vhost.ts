/**
 * A vhost of its own on a node or cluster the test started (no management plugin there:
 * rabbitmqctl does what ../vhost.ts does through the management API), so several
 * fault runs can share one node or cluster without seeing each other's queues.
 */
import { randomBytes } from 'node:crypto';
import type { TestVhost } from '../vhost.ts';

export interface EngineBroker {
  amqpUrl(vhost?: string): string;
  addVhost(name: string): Promise<void>;
  ctl(args: readonly string[], timeoutMs?: number): Promise<string>;
}

export async function createEngineVhost(broker: EngineBroker): Promise<TestVhost> {
  const name = `virtsync-test-${randomBytes(4).toString('hex')}`;
  await broker.addVhost(name);
  return {
    name,
    amqpUrl: broker.amqpUrl(name),
    async closeConnections() {
      const listed = (await broker.ctl(['list_connections', '-p', name, 'name', '--quiet', '--no-table-headers'])).split('\n').filter((line) => line.trim() !== '');
      await broker.ctl(['close_all_connections', '-p', name, 'virtsync fault test: connections force-closed']);
      return listed.length;
    },
    async delete() {
      await broker.ctl(['delete_vhost', name]);
    },
  };
}
