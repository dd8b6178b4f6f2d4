/**
 * Fault: on a 3-node RabbitMQ cluster of the test's own (nodes joined with join_cluster,
 * virtsync's quorum queues with a member on each node, every service given all three
 * node URLs in AMQP_URL), the node leading the writer's queue and the changes' queue
 * (virtsync.audit-subscriber) is killed with SIGKILL while the writer drains a cycle's
 * observations (batches of 10, killed after the first commit). Expected, with no help:
 * the queues elect new leaders on the surviving nodes, every service reconnects to one of
 * them, the writer resumes where it was and the audit trail catches up; nothing lost,
 * nothing applied twice, nothing dead-lettered. The killed node is started again at the
 * end, as its supervisor would, and rejoins by itself. Printed: the time from the kill
 * until the writer, and every service, had reconnected to a surviving node, and until the
 * system had settled (every observation decided, every change committed and audited).
 *
 * The cluster takes tens of seconds to form: the file starts it once, for every cluster
 * fault it holds.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Queue } from '../../shared/bus/topology.ts';
import { waitFor } from '../../tools/wait-for.ts';
import { createEngineVhost } from '../../tools/local-env/engines/engine-vhost.ts';
import { startRabbitCluster } from '../../tools/local-env/engines/rabbitmq-cluster.ts';
import type { RabbitNode } from '../../tools/local-env/engines/rabbitmq-node.ts';
import { type FaultOutcome, type FaultRig, createFaultRig, SERVICE_START_TIMEOUT_MS } from './harness/fault-rig.ts';
import { printFaultSummary } from './harness/fault-report.ts';
import { defineInvariantTests } from './harness/invariant-tests.ts';
import { useOwnEngine } from './harness/own-engine.ts';

const theCluster = useOwnEngine('the RabbitMQ cluster', () => startRabbitCluster({ size: 3 }), { startTimeoutMs: 240_000 });

describe('cluster-leader-killed', () => {
  let rig: FaultRig | undefined;
  let outcome: FaultOutcome | undefined;
  const seen: { members: string[]; writerLeader?: string; changesLeader?: string; killed?: RabbitNode; newLeader?: string } = { members: [] };
  const timings: { toWriterReconnectMs?: number; toAllReconnectedMs?: number; toSettledMs?: number } = {};

  before(
    async () => {
      const c = theCluster();
      const vhost = await createEngineVhost(c);
      rig = await createFaultRig({ fault: 'cluster-leader-killed', races: 'manual', engines: { vhost } });
      const r = rig;
      await r.runCycleWithoutWriter();
      await waitFor('the observations queued', async () => (await r.probe.messageCount(Queue.stateWriter)) >= r.observationMessagesPublished(), { timeoutMs: 30_000 });
      await r.applyRaces();

      seen.members = await c.membersOf(vhost.name, Queue.stateWriter);
      const writerLeader = await c.leaderOf(vhost.name, Queue.stateWriter);
      seen.writerLeader = writerLeader.nodeName;
      seen.changesLeader = (await c.leaderOf(vhost.name, Queue.auditSubscriber)).nodeName;

      r.startWriter({ WRITER_BATCH_SIZE: '10' });
      await waitFor('the writer committed its first batch', () => r.writerStats().batches >= 1, { timeoutMs: SERVICE_START_TIMEOUT_MS, intervalMs: 20 });
      const batchesAtKill = r.writerStats().batches;
      const running = r.processes.filter((p) => p.exit === undefined);
      const connectsAtKill = new Map(running.map((p) => [p, p.stats.brokerConnects]));
      const reconnected = (p: (typeof running)[number]): boolean => p.stats.brokerConnects > (connectsAtKill.get(p) ?? 0);
      const killedAt = Date.now();
      await writerLeader.kill();
      seen.killed = writerLeader;

      // A service connected to a surviving node keeps its connection; one connected to the killed node moves to the next URL.
      const writer = running.find((p) => p.service === 'state-writer');
      await waitFor('the writer connected to a surviving node', () => writer === undefined || reconnected(writer) || writer.stats.brokerLost === 0, { timeoutMs: 90_000, intervalMs: 50 });
      timings.toWriterReconnectMs = Date.now() - killedAt;
      await waitFor('every service that lost the killed node reconnected', () => running.every((p) => reconnected(p) || p.stats.brokerLost === 0), { timeoutMs: 90_000, intervalMs: 50 });
      timings.toAllReconnectedMs = Date.now() - killedAt;
      const settled = await r.settle(120_000);
      timings.toSettledMs = Date.now() - killedAt;
      seen.newLeader = (await c.leaderOf(vhost.name, Queue.stateWriter)).nodeName;

      // Its supervisor starts the killed node again; it rejoins the cluster by itself.
      await writerLeader.start();
      outcome = await r.finish(settled);
      const s = (ms: number | undefined): string => (ms === undefined ? '?' : `${(ms / 1000).toFixed(1)} s`);
      printFaultSummary('kill -9 of the RabbitMQ node leading the writer\'s and the changes\' quorum queues, mid-drain (3-node cluster)', outcome, [
        `quorum queue members ${seen.members.length} (${seen.members.join(', ')}); writer's queue led by ${seen.writerLeader}, changes' queue by ${seen.changesLeader}`,
        `killed ${writerLeader.nodeName} after ${batchesAtKill} committed batches; writer's queue then led by ${seen.newLeader}`,
        `recovery: writer reconnected ${s(timings.toWriterReconnectMs)} after the kill, every service ${s(timings.toAllReconnectedMs)}, system settled ${s(timings.toSettledMs)}`,
      ]);
      console.log(`RECOVERY cluster-leader-killed writer=${timings.toWriterReconnectMs}ms services=${timings.toAllReconnectedMs}ms settled=${timings.toSettledMs}ms`);
    },
    { timeout: 300_000 },
  );
  after(async () => {
    await rig?.dispose(outcome === undefined || outcome.invariants.violations.length > 0);
  });

  defineInvariantTests(() => {
    if (outcome === undefined) throw new Error('cluster-leader-killed did not run');
    return outcome;
  });

  test('the queues were replicated on all three nodes, their leader was killed and another node took over', () => {
    assert.equal(seen.members.length, 3);
    assert.equal(seen.killed?.nodeName, seen.writerLeader);
    assert.notEqual(seen.newLeader, seen.writerLeader);
    assert.equal(outcome?.figures.deadlettered, 0);
    assert.equal(outcome?.figures.committed, outcome?.fleet.changesExpected);
  });
});
