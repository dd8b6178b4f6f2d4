/**
 * virtsync's broker policy, applied with the command `virtsync policies` prints: the host
 * reports queue is bounded and drops its oldest reports, without dead-lettering them.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { BROKER_POLICIES, setPolicyCommand } from '../../../../shared/bus/broker-policies.ts';
import { Exchange, Queue, reportRoutingKey } from '../../../../shared/bus/topology.ts';
import { waitFor } from '../../../../tools/wait-for.ts';
import { type BusProbe, openBusProbe } from '../../../helpers/bus-probe.ts';
import { runCli } from '../../../helpers/cli-process.ts';
import { createTestVhost, type TestVhost } from '../../../../tools/local-env/vhost.ts';

const run = promisify(execFile);
let vhost: TestVhost;
let probe: BusProbe;

before(async () => {
  vhost = await createTestVhost();
  probe = await openBusProbe(vhost.amqpUrl);
});

after(async () => {
  await probe?.close();
  await vhost?.delete();
});

async function effectivePolicy(queue: string): Promise<{ policy?: string; definition?: Record<string, unknown> }> {
  const response = await fetch(`http://127.0.0.1:15672/api/queues/${encodeURIComponent(vhost.name)}/${encodeURIComponent(queue)}`, {
    headers: { authorization: `Basic ${Buffer.from('guest:guest').toString('base64')}` },
  });
  const body: unknown = await response.json();
  const policy: unknown = Reflect.get(Object(body), 'policy');
  const definition: unknown = Reflect.get(Object(body), 'effective_policy_definition');
  return { policy: typeof policy === 'string' ? policy : undefined, definition: typeof definition === 'object' && definition !== null ? Object(definition) : undefined };
}

test('`virtsync policies` prints a command that bounds the host reports queue', async () => {
  const printed = await runCli(['policies'], { AMQP_URL: vhost.amqpUrl });
  assert.equal(printed.code, 0, printed.stderr);
  const lines = printed.stdout.trim().split('\n');
  assert.equal(lines.length, BROKER_POLICIES.length);
  for (const line of lines) await run('sh', ['-c', line]);
  await waitFor('the policy applied to the host reports queue', async () => (await effectivePolicy(Queue.hostReports)).policy === 'virtsync-host-reports', { timeoutMs: 15_000, intervalMs: 500 });
  assert.deepEqual((await effectivePolicy(Queue.hostReports)).definition, { 'max-length': 100_000, overflow: 'drop-head' });
  assert.equal((await effectivePolicy(Queue.auditSubscriber)).policy, undefined, 'no policy on the audit queue');
});

test('overflowing host reports are dropped oldest first, never dead-lettered', async () => {
  const [policy] = BROKER_POLICIES;
  assert.ok(policy !== undefined);
  // The same policy with a bound a test can reach.
  await run('sh', ['-c', setPolicyCommand({ ...policy, definition: { ...policy.definition, 'max-length': 3 } }, vhost.name)]);
  await waitFor('the small bound applied', async () => (await effectivePolicy(Queue.hostReports)).definition?.['max-length'] === 3, { timeoutMs: 15_000, intervalMs: 500 });
  for (let n = 1; n <= 10; n++) probe.publish(Exchange.reports, reportRoutingKey('h1'), { n });
  await waitFor('the queue at its bound', async () => (await probe.messageCount(Queue.hostReports)) === 3 && (await probe.channel.checkQueue(Queue.hostReports)).messageCount === 3, { timeoutMs: 10_000 });
  const kept = await probe.drain(Queue.hostReports, 3);
  assert.deepEqual(kept.map((message) => JSON.parse(message.content.toString()).n), [8, 9, 10]);
  assert.equal(await probe.messageCount(Queue.deadLetter), 0);
});
