/**
 * Fault: the broker drops every service's connection mid-cycle, twice. Restarting
 * RabbitMQ itself is not safe on this machine (one broker serves every test running on
 * it), so the connections of the test's own vhost are force-closed through the
 * management API instead, which is what a broker restart or `rabbitmqctl
 * close_all_connections` looks like from the services: connection and channels gone,
 * unacked deliveries requeued, unconfirmed publishes unanswered. Close 1 comes with the
 * first host report of the first cycle (observations in flight); close 2 as soon as the
 * new connections are listed, during a later cycle; the tick producer runs until a full
 * cycle has been reported after close 2. Expected: every service reconnects and
 * resumes, nothing lost, no change applied twice.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { waitFor } from '../../tools/wait-for.ts';
import { closeServiceConnections } from './harness/broker-admin.ts';
import { type FaultOutcome, type FaultRig, createFaultRig, SERVICE_START_TIMEOUT_MS } from './harness/fault-rig.ts';
import { printFaultSummary } from './harness/fault-report.ts';
import { defineInvariantTests } from './harness/invariant-tests.ts';

let rig: FaultRig;
let outcome: FaultOutcome;
const closes: Array<{ closed: number; reportsBefore: number; batchesBefore: number }> = [];

before(
  async () => {
    rig = await createFaultRig({ fault: 'broker-connections-closed' });
    rig.startAuditSubscriber();
    rig.startWriter();
    rig.agentHosts.forEach((_, index) => rig.startAgent(index));
    const longRunning = rig.processes.length;
    // The management API lists a connection only after its next statistics round.
    const firstNames = new Set<string>();
    await waitFor('the services connected', () => rig.processes.every((p) => p.stats.brokerConnects >= 1), { timeoutMs: SERVICE_START_TIMEOUT_MS });
    // Runs until stopped: the faults come when the management API lists the connections, whenever that is.
    const producer = rig.startTickProducer({ intervalMs: 1_000, cycles: 0 });

    await waitFor('the first host report', () => rig.recorder.reports.length >= 1, { timeoutMs: SERVICE_START_TIMEOUT_MS });
    const close = async (exclude: ReadonlySet<string>): Promise<string[]> => {
      const names = await closeServiceConnections(rig.vhost.name, { atLeast: longRunning, exclude, timeoutMs: 15_000 });
      closes.push({ closed: names.length, reportsBefore: rig.recorder.reports.length, batchesBefore: rig.writerStats().batches });
      return names;
    };
    for (const name of await close(new Set())) firstNames.add(name);
    await waitFor('every service reconnected', () => rig.processes.every((p) => p.stats.brokerConnects >= 2 || p.service === 'tick-producer'), { timeoutMs: 30_000 });
    await close(firstNames);
    const afterSecond = closes[1]?.reportsBefore ?? 0;
    await waitFor('every service reconnected again and a full cycle reported', () =>
      rig.processes.every((p) => p.stats.brokerConnects >= 3 || p.service === 'tick-producer') && rig.recorder.reports.length >= afterSecond + rig.plan.hosts.length,
      { timeoutMs: 30_000 },
    );
    await producer.stop();

    const settled = await rig.settle(60_000);
    outcome = await rig.finish(settled);
    printFaultSummary('every service connection of the vhost force-closed mid-cycle, twice (broker restart not safe on a shared machine)', outcome, [
      ...closes.map((c, i) => `close ${i + 1}: ${c.closed} connections closed after ${c.reportsBefore} host reports and ${c.batchesBefore} committed batches`),
      `connects per process: ${rig.processes.map((p) => `${p.name}=${p.stats.brokerConnects}`).join(' ')}; ${rig.recorder.ticks.length} ticks, ${rig.recorder.reports.length} host reports`,
    ]);
  },
  { timeout: 150_000 },
);

after(async () => {
  await rig?.dispose(outcome === undefined || outcome.invariants.violations.length > 0);
});

defineInvariantTests(() => outcome);

test('every service reconnected after each close and went on working', () => {
  assert.equal(closes.length, 2);
  assert.ok(closes.every((c) => c.closed >= 4), `closed: ${closes.map((c) => c.closed).join(', ')}`);
  for (const p of rig.processes.filter((p) => p.service !== 'tick-producer')) {
    assert.ok(p.stats.brokerConnects >= 3, `${p.name} connected ${p.stats.brokerConnects} times`);
    assert.ok(p.stats.brokerLost >= 2, `${p.name} lost its connection ${p.stats.brokerLost} times`);
  }
  const lastClose = closes[1]?.reportsBefore ?? 0;
  assert.ok(rig.recorder.reports.length >= lastClose + rig.plan.hosts.length, 'a full cycle of host reports arrived after the last close');
  assert.equal(outcome.figures.committed, outcome.fleet.changesExpected);
  assert.equal(outcome.figures.deadlettered, 0);
});
