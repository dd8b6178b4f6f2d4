/**
 * Faults: the broker restarted under a running system, on a RabbitMQ node of the test's
 * own (the machine's node is shared and never restarted), each fault in a vhost of its
 * own on that node; the broker stays away 3 s after every service has noticed:
 *  - broker-restart-app: `rabbitmqctl stop_app`, then `start_app` (the
 *    Erlang VM stays up: what an operator does before a reconfiguration);
 *  - broker-restart-node: `rabbitmqctl stop`, then the node started again (a restart
 *    of the whole service, as a package upgrade or a reboot does).
 * Both come at the first host report of a cycle, with observations in flight. Expected:
 * every service reconnects by itself, every host is synced again, nothing lost or
 * applied twice, nothing dead-lettered.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { waitFor } from '../../tools/wait-for.ts';
import { createEngineVhost } from '../../tools/local-env/engines/engine-vhost.ts';
import { startRabbitNode } from '../../tools/local-env/engines/rabbitmq-node.ts';
import type { FaultRig } from './harness/fault-rig.ts';
import { describeRestartFault, type RestartFaultRun } from './harness/restart-fault.ts';
import { useOwnEngine } from './harness/own-engine.ts';

const theNode = useOwnEngine('the RabbitMQ node', () => startRabbitNode(), { startTimeoutMs: 180_000 });

const everyServiceLostTheBroker = (rig: FaultRig): Promise<void> =>
  waitFor('every running service to notice', () => rig.processes.filter((p) => p.exit === undefined).every((p) => p.stats.brokerLost >= 1), {
    timeoutMs: 30_000,
  });

/** Every service that lost the broker connects again by itself (one whose work was done before the restart may take longer than the cycle). */
const everyServiceReconnected = (rig: FaultRig): Promise<void> =>
  waitFor(
    'every running service to reconnect',
    () => rig.processes.filter((p) => p.exit === undefined).every((p) => p.stats.brokerConnects > p.stats.brokerLost),
    { timeoutMs: 60_000 },
  );

const reconnectedAndClean = (run: () => RestartFaultRun): void => {
  test('every service reconnected by itself; nothing dead-lettered, one change per drifted instance', () => {
    const { rig, outcome } = run();
    for (const p of rig.processes.filter((p) => p.service !== 'tick-producer')) {
      assert.ok(p.stats.brokerLost >= 1, `${p.name} never lost the broker`);
      assert.ok(p.stats.brokerConnects >= 2, `${p.name} connected ${p.stats.brokerConnects} times`);
    }
    assert.equal(outcome.figures.deadlettered, 0);
    assert.equal(outcome.figures.committed, outcome.fleet.changesExpected);
  });
};

describeRestartFault({
  fault: 'broker-restart-app',
  title: 'rabbitmqctl stop_app / start_app on the broker mid-cycle (a node of the test\'s own)',
  rig: async () => ({ engines: { vhost: await createEngineVhost(theNode()) } }),
  async away(rig) {
    await theNode().stopApp();
    await everyServiceLostTheBroker(rig);
  },
  async back(rig) {
    await theNode().startApp();
    await everyServiceReconnected(rig);
  },
  tests: reconnectedAndClean,
});

describeRestartFault({
  fault: 'broker-restart-node',
  title: 'rabbitmqctl stop, node started again, mid-cycle (a node of the test\'s own)',
  rig: async () => ({ engines: { vhost: await createEngineVhost(theNode()) } }),
  async away(rig) {
    await theNode().stop();
    await everyServiceLostTheBroker(rig);
  },
  async back(rig) {
    await theNode().start();
    await everyServiceReconnected(rig);
  },
  tests: reconnectedAndClean,
});
