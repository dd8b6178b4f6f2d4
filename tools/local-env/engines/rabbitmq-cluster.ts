/**
 * A RabbitMQ cluster of the test's own on one machine: `size` nodes started together,
 * sharing one Erlang cookie, the others joined to the first with join_cluster. Quorum
 * queues declared on it get a member on every node (their initial group size defaults
 * to the cluster's size).
 */
import { rmSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { engineDir, uniqueEngineName } from './engine-registry.ts';
import { type RabbitNode, type RabbitNodeOptions, startRabbitNode } from './rabbitmq-node.ts';

export interface RabbitCluster {
  nodes: RabbitNode[];
  /** Every node's URL for `vhost`, comma-separated: what AMQP_URL takes for a cluster. */
  amqpUrl(vhost?: string): string;
  /** rabbitmqctl against the first node that answers. */
  ctl(args: readonly string[], timeoutMs?: number): Promise<string>;
  /** The node leading a quorum queue, asked of a node that runs. */
  leaderOf(vhost: string, queue: string): Promise<RabbitNode>;
  /** Members of a quorum queue, by node name. */
  membersOf(vhost: string, queue: string): Promise<string[]>;
  addVhost(name: string): Promise<void>;
  remove(): Promise<void>;
}

// Classic queues list their leader and members as empty strings, quorum queues as a node and an array.
const queueListSchema = z.array(
  z.object({
    name: z.string(),
    leader: z.string().optional(),
    members: z.union([z.array(z.string()), z.string()]).optional().transform((members) => (Array.isArray(members) ? members : [])),
  }),
);

export async function startRabbitCluster(options: Omit<RabbitNodeOptions, 'cookieHome' | 'parentDir'> & { size?: number } = {}): Promise<RabbitCluster> {
  const dir = engineDir(uniqueEngineName());
  const nodeOptions = { ...options, cookieHome: path.join(dir, 'home'), parentDir: dir };
  const started = await Promise.allSettled(Array.from({ length: options.size ?? 3 }, () => startRabbitNode(nodeOptions)));
  const nodes = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  const remove = async (): Promise<void> => {
    await Promise.all(nodes.map((node) => node.remove()));
    rmSync(dir, { recursive: true, force: true });
  };
  const failed = started.find((result) => result.status === 'rejected');
  if (failed !== undefined) {
    await remove();
    throw failed.reason;
  }
  const [first, ...others] = nodes as [RabbitNode, ...RabbitNode[]];
  try {
    for (const node of others) {
      await node.stopApp();
      await node.ctl(['join_cluster', first.nodeName]);
      await node.startApp();
    }
  } catch (err) {
    await remove();
    throw err;
  }

  /** rabbitmqctl against the first node that answers (one may be down on purpose). */
  const ctl = async (args: readonly string[], timeoutMs = 15_000): Promise<string> => {
    let lastError: unknown;
    for (const node of nodes) {
      try {
        return await node.ctl(args, timeoutMs);
      } catch (err) {
        lastError = err;
      }
    }
    throw new Error(`no node of the cluster answered rabbitmqctl ${args[0] ?? ''}`, { cause: lastError });
  };
  const queues = async (vhost: string): Promise<z.infer<typeof queueListSchema>> =>
    queueListSchema.parse(JSON.parse(await ctl(['list_queues', '-p', vhost, 'name', 'leader', 'members', '--formatter', 'json', '--quiet'])));
  const find = async (vhost: string, queue: string): Promise<z.infer<typeof queueListSchema>[number]> => {
    const entry = (await queues(vhost)).find((q) => q.name === queue);
    if (entry === undefined) throw new Error(`no queue ${queue} in vhost ${vhost}`);
    return entry;
  };
  return {
    nodes,
    ctl,
    amqpUrl: (vhost = '/') => nodes.map((node) => node.amqpUrl(vhost)).join(','),
    async leaderOf(vhost, queue) {
      const { leader } = await find(vhost, queue);
      const node = nodes.find((n) => n.nodeName === leader);
      if (node === undefined) throw new Error(`queue ${queue} has no leader among the cluster's nodes (${leader ?? 'none'})`);
      return node;
    },
    membersOf: async (vhost, queue) => (await find(vhost, queue)).members ?? [],
    addVhost: (name) => first.addVhost(name),
    remove,
  };
}
