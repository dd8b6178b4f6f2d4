/**
 * UNREACHABLE_HOST_POLICY=nostate on real PostgreSQL and RabbitMQ: a host the leader judged
 * unreachable longer than the delay has its instances set NOSTATE (rule host-unreachable),
 * published as change events, except rows the cloud is busy with; nothing happens before the
 * delay, nor while the report path is silent, nor under the default policy. With the host
 * back, a look it made before it went silent, arriving late, puts its own state back
 * (virtsync's own write is not mistaken for the cloud's). The tests run in order on one database.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { Message } from 'amqplib';
import { sql } from 'kysely';
import { Exchange } from '../../../../shared/bus/topology.ts';
import type { NewInstance } from '../../../../shared/db/database.ts';
import { REPORT_PATH } from '../../../../shared/db/host-liveness.ts';
import { changeEventSchema } from '../../../../shared/messages/change-event.ts';
import { parseMessage } from '../../../../shared/messages/codec.ts';
import { PowerState } from '../../../../shared/power-state.ts';
import { VmState } from '../../../../shared/vm-state.ts';
import { waitFor } from '../../../../tools/wait-for.ts';
import { lookSequence, observationOf, publishObservations } from '../../../helpers/observations.ts';
import { openWriterRig, type WriterRig } from '../../../helpers/writer-rig.ts';

const suffix = randomBytes(3).toString('hex');
const silent = `silent-${suffix}`;
const healthy = `healthy-${suffix}`;
const WAIT = { timeoutMs: 15_000 };
const POLICY = { UNREACHABLE_HOST_POLICY: 'nostate', UNREACHABLE_NOSTATE_AFTER_MS: '60000', UNREACHABLE_CHECK_MS: '100' };

const instance = (host: string, overrides: Partial<NewInstance> = {}): NewInstance => ({ uuid: randomUUID(), host, power_state: PowerState.RUNNING, vm_state: VmState.ACTIVE, ...overrides });
const running = instance(silent);
const stopped = instance(silent, { power_state: PowerState.SHUTOFF, vm_state: VmState.SHUTOFF });
const busy = instance(silent, { task_state: 'rebooting' });
const migrating = instance(silent, { vm_state: VmState.MIGRATING });
const elsewhere = instance(healthy);

let rig: WriterRig;
let changes: Message[];

before(async () => {
  rig = await openWriterRig();
  changes = await rig.probe.collect(Exchange.changes, 'instance.#');
  await rig.database.db.insertInto('instances').values([running, stopped, busy, migrating, elsewhere]).execute();
});

after(async () => {
  await rig?.close();
});

async function judge(host: string, state: 'healthy' | 'unreachable', sinceSecondsAgo: number): Promise<void> {
  await rig.database.db
    .insertInto('host_liveness')
    .values({ host, state, reason: 'test', since: sql<Date>`now() - make_interval(secs => ${sinceSecondsAgo})` })
    .onConflict((oc) => oc.column('host').doUpdateSet({ state, since: sql<Date>`now() - make_interval(secs => ${sinceSecondsAgo})` }))
    .execute();
}

async function reportPath(state: 'ok' | 'silent'): Promise<void> {
  await rig.database.db
    .insertInto('pipeline_health')
    .values({ component: REPORT_PATH, state, detail: 'test' })
    .onConflict((oc) => oc.column('component').doUpdateSet({ state }))
    .execute();
}

async function powerStates(): Promise<Record<string, PowerState>> {
  const rows = await rig.database.db.selectFrom('instances').select(['uuid', 'power_state']).execute();
  return Object.fromEntries(rows.map((row) => [row.uuid, row.power_state]));
}

const initial = (): Record<string, PowerState> =>
  Object.fromEntries([running, stopped, busy, migrating, elsewhere].map((row) => [row.uuid, row.power_state]));

/** Long enough for many checks at UNREACHABLE_CHECK_MS=100: a test of "nothing happens" waits this long. */
const SEVERAL_CHECKS_MS = 1_000;

test('the default policy leaves an unreachable host\'s rows alone', async () => {
  await judge(silent, 'unreachable', 3_600);
  await judge(healthy, 'healthy', 3_600);
  await reportPath('ok');
  await rig.startWriter({ UNREACHABLE_CHECK_MS: '100', UNREACHABLE_NOSTATE_AFTER_MS: '1' });
  await new Promise((resolve) => setTimeout(resolve, SEVERAL_CHECKS_MS));
  assert.deepEqual(await powerStates(), initial());
});

test('nostate: nothing before the delay, nothing while the report path is silent', async () => {
  await judge(silent, 'unreachable', 30);
  await rig.startWriter(POLICY);
  await new Promise((resolve) => setTimeout(resolve, SEVERAL_CHECKS_MS));
  assert.deepEqual(await powerStates(), initial());

  await reportPath('silent');
  await judge(silent, 'unreachable', 120);
  await new Promise((resolve) => setTimeout(resolve, SEVERAL_CHECKS_MS));
  assert.deepEqual(await powerStates(), initial());
  assert.equal(changes.length, 0);
});

test('nostate: past the delay, every row of the host the cloud is not busy with becomes NOSTATE, published as a change', async () => {
  await reportPath('ok');
  await waitFor('the two rows NOSTATE', async () => {
    const states = await powerStates();
    return states[running.uuid] === PowerState.NOSTATE && states[stopped.uuid] === PowerState.NOSTATE;
  }, WAIT);
  await waitFor('two change events', () => changes.length >= 2, WAIT);
  assert.deepEqual(await powerStates(), { ...initial(), [running.uuid]: PowerState.NOSTATE, [stopped.uuid]: PowerState.NOSTATE });
  const events = changes.map((message) => parseMessage(changeEventSchema, message.content)).flatMap((parsed) => (parsed.ok ? [parsed.value] : []));
  assert.deepEqual(
    events.map((event) => [event.instanceUuid, event.rule, event.host, event.before, event.after]).sort(),
    [
      [running.uuid, 'host-unreachable', silent, { powerState: PowerState.RUNNING, vmState: VmState.ACTIVE }, { powerState: PowerState.NOSTATE, vmState: VmState.ACTIVE }],
      [stopped.uuid, 'host-unreachable', silent, { powerState: PowerState.SHUTOFF, vmState: VmState.SHUTOFF }, { powerState: PowerState.NOSTATE, vmState: VmState.SHUTOFF }],
    ].sort(),
  );
  // The next checks find nothing more to do.
  await new Promise((resolve) => setTimeout(resolve, SEVERAL_CHECKS_MS));
  assert.equal(changes.length, 2);
});

test('the host back, a look it made before it went silent, arriving late, puts its state back', async () => {
  // Still unreachable, the policy would set the row NOSTATE again at its next check.
  await judge(silent, 'healthy', 0);
  // Read when the row was RUNNING, before the policy's write.
  publishObservations(rig.probe, [observationOf(running, PowerState.RUNNING, lookSequence(1)())]);
  await waitFor('the row RUNNING again', async () => (await powerStates())[running.uuid] === PowerState.RUNNING, WAIT);
});
