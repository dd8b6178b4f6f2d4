/**
 * Issue 5's scaling test as a fault: three state-writer processes share the observation
 * stream of a larger fleet (30 hosts × 60 VMs), and one of them is killed with SIGKILL
 * the moment it logs its second committed batch, mid-stream, with more deliveries in
 * hand. To make the writers' batches overlap (the case where two transactions want the
 * same rows), every observation is also delivered a second time, so copies of one
 * observation are often decided by two writers at once. Expected: nothing lost, no
 * deadlock (everything settles, no 40P01 retry), one committed change per drifted
 * instance, one audit row per change.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { ConsumeMessage } from 'amqplib';
import { Exchange, Queue } from '../../shared/bus/topology.ts';
import { waitFor } from '../../tools/wait-for.ts';
import { type FaultOutcome, type FaultRig, createFaultRig, type RigProcess } from './harness/fault-rig.ts';
import { printFaultSummary } from './harness/fault-report.ts';
import { defineInvariantTests } from './harness/invariant-tests.ts';

let rig: FaultRig;
let outcome: FaultOutcome;
let victim: RigProcess | undefined;
let victimBatches = 0;
const WRITERS = 3;

before(
  async () => {
    rig = await createFaultRig({ fault: 'writers-3-one-killed', fleet: { hosts: 30, minVmsPerHost: 60, maxVmsPerHost: 60 }, agents: 2 });
    const { channel } = rig.probe;
    const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true });
    await channel.bindQueue(queue, Exchange.observations, 'observation.#');
    await channel.consume(queue, (message: ConsumeMessage | null) => {
      if (message === null) return;
      const { messageId, type, contentType } = message.properties;
      channel.sendToQueue(Queue.stateWriter, message.content, { persistent: true, messageId, type, contentType });
      rig.injected.duplicates++;
      channel.ack(message);
    });

    rig.startAuditSubscriber();
    const env = { WRITER_BATCH_SIZE: '50' };
    for (let i = 1; i <= WRITERS; i++) {
      rig.startWriter(env, (entry, process) => {
        if (i !== 2 || entry.msg !== 'batch committed' || process.stats.batches < 2 || process.killed) return;
        victim = process;
        victimBatches = process.stats.batches;
        void rig.kill(process);
      });
    }
    // Every writer consuming before the first observation, so all three share the stream from the start.
    await waitFor('the writers connected', () => rig.processes.filter((p) => p.service === 'state-writer').every((p) => p.stats.brokerConnects >= 1), { timeoutMs: 30_000 });
    rig.agentHosts.forEach((_, index) => rig.startAgent(index));
    rig.startTickProducer({ intervalMs: 2_000, cycles: 1 });
    const settled = await rig.settle(90_000);
    outcome = await rig.finish(settled);
    const deadlocks = outcome.stats.writers.retries.filter((r) => r.code === '40P01').length;
    printFaultSummary(`${WRITERS} writers sharing the observation stream (every observation delivered twice), one killed with SIGKILL`, outcome, [
      `writer decisions per process: ${rig.processes.filter((p) => p.service === 'state-writer').map((p) => `${p.name}=${p.stats.observations}${p.killed ? ' (killed)' : ''}`).join(' ')}`,
      `${victim?.name ?? 'no writer'} killed after its batch ${victimBatches} was committed; decisions redone after the kill ${outcome.stats.writers.observations - rig.observationsPublished() - rig.injected.duplicates}; deadlocks detected ${deadlocks}`,
    ]);
  },
  { timeout: 150_000 },
);

after(async () => {
  await rig?.dispose(outcome === undefined || outcome.invariants.violations.length > 0);
});

defineInvariantTests(() => outcome);

test('one writer was killed mid-run and the two others took over its share, without deadlock', () => {
  assert.ok(victim !== undefined && victim.killed, 'writer 2 was killed');
  const survivors = rig.processes.filter((p) => p.service === 'state-writer' && !p.killed);
  assert.equal(survivors.length, WRITERS - 1);
  for (const writer of survivors) assert.ok(writer.stats.batches > 0, `${writer.name} committed nothing`);
  assert.deepEqual(outcome.stats.writers.retries.filter((r) => r.code === '40P01'), []);
  assert.ok(outcome.fleet.instances >= 1_800);
  assert.equal(outcome.figures.committed, outcome.fleet.changesExpected);
  assert.equal(outcome.figures.deadlettered, 0);
});
