/**
 * The state writer in-process on real PostgreSQL and RabbitMQ: observations published as
 * raw bytes, rows inserted directly, results read back from the table, the outbox, the
 * changes exchange and the dead-letter queue. One writer serves the file; a second one
 * joins for the concurrency test, and both are stopped by the last tests.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { Message } from 'amqplib';
import { type Kysely, sql } from 'kysely';
import { pino } from 'pino';
import { connectBus, type BusConnection } from '../../../shared/bus/connect.ts';
import { Exchange, observationRoutingKey, Queue, REASON_HEADER } from '../../../shared/bus/topology.ts';
import { loadConfig, stateWriterEnv } from '../../../shared/config.ts';
import { countUnpublished } from '../../../shared/db/change-outbox.ts';
import { createDatabase } from '../../../shared/db/connect.ts';
import type { Database, NewInstance } from '../../../shared/db/database.ts';
import type { Logger } from '../../../shared/logging.ts';
import { type ChangeEvent, changeEventSchema } from '../../../shared/messages/change-event.ts';
import { parseMessage } from '../../../shared/messages/codec.ts';
import { groupObservations, type Observation } from '../../../shared/messages/observation.ts';
import { PowerState } from '../../../shared/power-state.ts';
import { type RunningService, startService } from '../../../shared/service-runner.ts';
import type { UpdateRule } from '../../../shared/sync-rules.ts';
import { VmState } from '../../../shared/vm-state.ts';
import { stateWriter } from '../../../services/state-writer/state-writer.ts';
import { waitFor } from '../../../tools/wait-for.ts';
import { type BusProbe, openBusProbe } from '../../helpers/bus-probe.ts';
import { publishObservations } from '../../helpers/observations.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/test-database.ts';
import { testLogger } from '../../helpers/test-logger.ts';
import { createTestVhost, type TestVhost } from '../../helpers/test-vhost.ts';

const suffix = randomBytes(3).toString('hex');
/** Dotted on purpose: a topic routing key carries it as one word, dots as `_`. */
const host = `writer-${suffix}.test`;
const hostWord = host.replaceAll('.', '_');
const otherHost = `other-${suffix}`;
const WAIT = { timeoutMs: 15_000 };

let database: TestDatabase;
let vhost: TestVhost;
let probe: BusProbe;
/** Everything published on the changes exchange, from the first test on. */
let changes: Message[];
let writerA: RunningService;
let writerB: RunningService | undefined;
let dbB: Kysely<Database> | undefined;
const buses: BusConnection[] = [];
const logs = createLogCapture();

before(async () => {
  database = await createTestDatabase();
  vhost = await createTestVhost();
  probe = await openBusProbe(vhost.amqpUrl);
  changes = await probe.collect(Exchange.changes, 'instance.#');
  const bus = connectBus({ url: vhost.amqpUrl, name: 'test state-writer a', log: testLogger });
  buses.push(bus);
  writerA = await startService(stateWriter, { config: writerConfig(), db: database.db, bus, log: logs.logger('a') });
});

after(async () => {
  await writerA?.stop();
  await writerB?.stop();
  for (const bus of buses) await bus.close();
  await dbB?.destroy();
  await probe?.close();
  await vhost?.delete();
  await database?.drop();
});

function writerConfig(extra: Record<string, string> = {}) {
  return loadConfig(stateWriterEnv, {
    DATABASE_URL: database.url,
    AMQP_URL: vhost.amqpUrl,
    WRITER_BATCH_LINGER_MS: '20',
    OUTBOX_POLL_MS: '100',
    ...extra,
  });
}

// ---------------------------------------------------------------------------------------
// Helpers

function observation(uuid: string, powerState: PowerState | null, observedAt: Date, observingHost = host): Observation {
  return {
    observationId: randomUUID(),
    instanceUuid: uuid,
    host: observingHost,
    powerState,
    observedAt: observedAt.toISOString(),
    trigger: 'tick',
    tickId: null,
  };
}

/** As its own message, the way an agent publishes a lifecycle event's observation. */
function publish(obs: Observation): void {
  publishObservations(probe, [obs]);
}

function newInstance(overrides: Partial<NewInstance> = {}): NewInstance {
  return { uuid: randomUUID(), host, power_state: PowerState.RUNNING, vm_state: VmState.ACTIVE, ...overrides };
}

async function insert(rows: readonly NewInstance[]): Promise<void> {
  await database.db.insertInto('instances').values([...rows]).execute();
}

async function readRow(uuid: string) {
  return database.db.selectFrom('instances').selectAll().where('uuid', '=', uuid).executeTakeFirst();
}

async function readRows(uuids: readonly string[]) {
  const rows = await database.db.selectFrom('instances').selectAll().where('uuid', 'in', [...uuids]).execute();
  return new Map(rows.map((row) => [row.uuid, row]));
}

/**
 * Publishes one more observation and waits until it is committed. With a single writer
 * consuming, batches are committed one after another in delivery order, so everything
 * published before it has been decided and acked by then.
 */
async function settle(): Promise<void> {
  const sentinel = newInstance();
  await insert([sentinel]);
  publish(observation(sentinel.uuid, PowerState.PAUSED, new Date()));
  await waitFor('the sentinel observation to be committed', async () => (await readRow(sentinel.uuid))?.power_state === PowerState.PAUSED, WAIT);
}

interface OutboxChange {
  seq: bigint;
  routingKey: string;
  publishedAt: Date | null;
  event: ChangeEvent;
}

/** The outbox's change events, parsed against the contract, oldest first. */
async function outboxChanges(uuids?: readonly string[]): Promise<Map<string, OutboxChange[]>> {
  let query = database.db.selectFrom('change_outbox').select(['seq', 'routing_key', 'published_at', 'payload']).orderBy('seq');
  if (uuids !== undefined) query = query.where(sql<string>`payload->>'instanceUuid'`, 'in', [...uuids]);
  const byUuid = new Map<string, OutboxChange[]>();
  for (const row of await query.execute()) {
    const parsed = changeEventSchema.safeParse(row.payload);
    assert.ok(parsed.success, `outbox payload ${JSON.stringify(row.payload)} is a change event`);
    const change = { seq: BigInt(row.seq), routingKey: row.routing_key, publishedAt: row.published_at, event: parsed.data };
    byUuid.set(parsed.data.instanceUuid, [...(byUuid.get(parsed.data.instanceUuid) ?? []), change]);
  }
  return byUuid;
}

/** What arrived on the changes exchange for one instance. */
function deliveredChanges(uuid: string): Array<{ routingKey: string; messageId: unknown; event: ChangeEvent }> {
  return changes.flatMap((message) => {
    const parsed = parseMessage(changeEventSchema, message.content);
    assert.ok(parsed.ok, `a change event on the exchange: ${parsed.ok ? '' : parsed.reason}`);
    return parsed.value.instanceUuid === uuid
      ? [{ routingKey: message.fields.routingKey, messageId: message.properties.messageId, event: parsed.value }]
      : [];
  });
}

async function waitForOutboxPublished(): Promise<void> {
  await waitFor('every outbox event to be published', async () => (await countUnpublished(database.db)) === 0, WAIT);
}

// ---------------------------------------------------------------------------------------
// (a) + (b): one observation per rule branch

type Expectation =
  | { kind: 'unchanged' }
  | { kind: 'absent' }
  | {
      kind: 'row';
      powerState: PowerState;
      vmState: VmState;
      /** power_state_updated_at becomes the observation's time (else stays as it was). */
      stamped: boolean;
      missedReports: number;
      /** last_missed_at becomes the observation's time (else stays as it was). */
      missStamped: boolean;
      change?: { rule: UpdateRule; stateWord: string };
    };

interface RuleCase {
  name: string;
  row: NewInstance | undefined;
  obs: Observation;
  expect: Expectation;
}

describe('(a, b) one observation per rule branch', () => {
  const now = Date.now();
  const at = new Date(now);
  const earlier = new Date(now - 60_000);
  const longAgo = new Date(now - 3_600_000);

  const build = (
    name: string,
    row: NewInstance | undefined,
    observe: (uuid: string) => Observation,
    expect: Expectation,
  ): RuleCase => {
    const uuid = row?.uuid ?? randomUUID();
    return { name, row, obs: observe(uuid), expect };
  };
  const unchanged: Expectation = { kind: 'unchanged' };

  const cases: RuleCase[] = [
    build('stopped: SHUTOFF on an ACTIVE row sets power_state and vm_state SHUTOFF', newInstance(), (uuid) => observation(uuid, PowerState.SHUTOFF, at), {
      kind: 'row', powerState: PowerState.SHUTOFF, vmState: VmState.SHUTOFF, stamped: true, missedReports: 0, missStamped: false, change: { rule: 'stopped', stateWord: 'shutoff' },
    }),
    build('stopped: CRASHED on an ACTIVE row', newInstance(), (uuid) => observation(uuid, PowerState.CRASHED, at), {
      kind: 'row', powerState: PowerState.CRASHED, vmState: VmState.SHUTOFF, stamped: true, missedReports: 0, missStamped: false, change: { rule: 'stopped', stateWord: 'crashed' },
    }),
    build('running: RUNNING on a SHUTOFF row makes it ACTIVE', newInstance({ power_state: PowerState.SHUTOFF, vm_state: VmState.SHUTOFF }), (uuid) => observation(uuid, PowerState.RUNNING, at), {
      kind: 'row', powerState: PowerState.RUNNING, vmState: VmState.ACTIVE, stamped: true, missedReports: 0, missStamped: false, change: { rule: 'running', stateWord: 'running' },
    }),
    build('running: BLOCKED counts as running', newInstance({ power_state: PowerState.PAUSED, vm_state: VmState.PAUSED }), (uuid) => observation(uuid, PowerState.BLOCKED, at), {
      kind: 'row', powerState: PowerState.BLOCKED, vmState: VmState.ACTIVE, stamped: true, missedReports: 0, missStamped: false, change: { rule: 'running', stateWord: 'blocked' },
    }),
    build('power-only: PAUSED changes power_state only', newInstance(), (uuid) => observation(uuid, PowerState.PAUSED, at), {
      kind: 'row', powerState: PowerState.PAUSED, vmState: VmState.ACTIVE, stamped: true, missedReports: 0, missStamped: false, change: { rule: 'power-only', stateWord: 'paused' },
    }),
    build('power-only: SHUTOFF on a row that is not ACTIVE keeps its vm_state', newInstance({ power_state: PowerState.PAUSED, vm_state: VmState.PAUSED }), (uuid) => observation(uuid, PowerState.SHUTOFF, at), {
      kind: 'row', powerState: PowerState.SHUTOFF, vmState: VmState.PAUSED, stamped: true, missedReports: 0, missStamped: false, change: { rule: 'power-only', stateWord: 'shutoff' },
    }),
    build('missing: unknown to the hypervisor sets NOSTATE and counts the miss', newInstance(), (uuid) => observation(uuid, null, at), {
      kind: 'row', powerState: PowerState.NOSTATE, vmState: VmState.ACTIVE, stamped: true, missedReports: 1, missStamped: true, change: { rule: 'missing', stateWord: 'nostate' },
    }),
    build('reappeared: found again in agreement resets the missed count and confirms the state', newInstance({ missed_reports: 1, last_missed_at: earlier }), (uuid) => observation(uuid, PowerState.RUNNING, at), {
      kind: 'row', powerState: PowerState.RUNNING, vmState: VmState.ACTIVE, stamped: true, missedReports: 0, missStamped: false,
    }),
    build('moved: not found here, the row names another host', newInstance({ host: otherHost }), (uuid) => observation(uuid, null, at), unchanged),
    build('migrating-in: not found here, the row is MIGRATING to this host', newInstance({ vm_state: VmState.MIGRATING }), (uuid) => observation(uuid, null, at), unchanged),
    build('deleted (soft): a row with deleted_at set is left alone', newInstance({ deleted_at: longAgo }), (uuid) => observation(uuid, PowerState.SHUTOFF, at), unchanged),
    build('deleted (hard): no row, none is created', undefined, (uuid) => observation(uuid, PowerState.SHUTOFF, at), { kind: 'absent' }),
    build('stale-host: found on a host that does not own the row', newInstance({ host: otherHost }), (uuid) => observation(uuid, PowerState.SHUTOFF, at), unchanged),
    build('stale-observation: observed before the row last changed', newInstance({ power_state_updated_at: at }), (uuid) => observation(uuid, PowerState.SHUTOFF, earlier), unchanged),
    build('task-in-progress: the cloud has an operation running', newInstance({ task_state: 'rebooting' }), (uuid) => observation(uuid, PowerState.SHUTOFF, at), unchanged),
    // Confirming the state as of the observation, so an older one arriving later is stale.
    build('equal: the hypervisor agrees with the row, which is stamped and otherwise unchanged', newInstance({ power_state: PowerState.PAUSED, vm_state: VmState.PAUSED }), (uuid) => observation(uuid, PowerState.PAUSED, at), {
      kind: 'row', powerState: PowerState.PAUSED, vmState: VmState.PAUSED, stamped: true, missedReports: 0, missStamped: false,
    }),
  ];
  const initial: Map<string, Awaited<ReturnType<typeof readRow>>> = new Map();

  before(async () => {
    await insert(cases.flatMap((c) => (c.row === undefined ? [] : [c.row])));
    for (const c of cases) initial.set(c.obs.instanceUuid, await readRow(c.obs.instanceUuid));
    for (const c of cases) publish(c.obs);
    await settle();
  });

  for (const c of cases) {
    test(c.name, async () => {
      const uuid = c.obs.instanceUuid;
      const row = await readRow(uuid);
      const previous = initial.get(uuid);
      const { expect } = c;
      if (expect.kind === 'absent') {
        assert.equal(row, undefined);
      } else if (expect.kind === 'unchanged') {
        assert.ok(previous !== undefined);
        assert.deepEqual(row, previous, 'the row, updated_at included, is untouched');
      } else {
        assert.ok(previous !== undefined && row !== undefined);
        const observedAt = new Date(c.obs.observedAt);
        assert.deepEqual(row, {
          ...previous,
          power_state: expect.powerState,
          vm_state: expect.vmState,
          power_state_updated_at: expect.stamped ? observedAt : previous.power_state_updated_at,
          missed_reports: expect.missedReports,
          last_missed_at: expect.missStamped ? observedAt : previous.last_missed_at,
          updated_at: row.updated_at,
        });
        assert.ok(row.updated_at.getTime() >= previous.updated_at.getTime());
      }
    });
  }

  test('(b) each committed change is in change_outbox with its routing key, and gets published_at set', async () => {
    await waitForOutboxPublished();
    const outbox = await outboxChanges(cases.map((c) => c.obs.instanceUuid));
    for (const c of cases) {
      const found = outbox.get(c.obs.instanceUuid) ?? [];
      if (c.expect.kind !== 'row' || c.expect.change === undefined) {
        assert.deepEqual(found, [], `${c.name}: no change event`);
        continue;
      }
      assert.equal(found.length, 1, `${c.name}: one change event`);
      const [change] = found;
      const row = c.row;
      assert.ok(change !== undefined && row !== undefined);
      assert.equal(change.routingKey, `instance.${hostWord}.${c.expect.change.stateWord}`);
      assert.ok(change.publishedAt instanceof Date, `${c.name}: published`);
      assert.deepEqual(
        { ...change.event, eventId: '', committedAt: '' },
        {
          schemaVersion: 1,
          eventId: '',
          instanceUuid: c.obs.instanceUuid,
          host,
          rule: c.expect.change.rule,
          before: { powerState: row.power_state, vmState: row.vm_state },
          after: { powerState: c.expect.powerState, vmState: c.expect.vmState },
          observationId: c.obs.observationId,
          observedAt: c.obs.observedAt,
          committedAt: '',
        },
      );
      assert.ok(Date.parse(change.event.committedAt) >= Date.parse(c.obs.observedAt));
    }
  });

  test('(b) each change arrives on the changes exchange as instance.<host>.<state> and parses as a change event', async () => {
    const expected = cases.filter((c) => c.expect.kind === 'row' && c.expect.change !== undefined);
    await waitFor('every change event on the changes exchange', () => expected.every((c) => deliveredChanges(c.obs.instanceUuid).length > 0), WAIT);
    const outbox = await outboxChanges(expected.map((c) => c.obs.instanceUuid));
    for (const c of expected) {
      const delivered = deliveredChanges(c.obs.instanceUuid);
      const [stored] = outbox.get(c.obs.instanceUuid) ?? [];
      assert.ok(stored !== undefined);
      assert.equal(delivered.length, 1, `${c.name}: delivered once`);
      assert.equal(delivered[0]?.routingKey, stored.routingKey);
      assert.match(delivered[0]?.routingKey ?? '', new RegExp(`^instance\\.${hostWord}\\.[a-z]+$`));
      assert.equal(delivered[0]?.messageId, stored.event.eventId);
      assert.deepEqual(delivered[0]?.event, stored.event);
    }
    for (const c of cases.filter((x) => !expected.includes(x))) {
      assert.deepEqual(deliveredChanges(c.obs.instanceUuid), [], `${c.name}: nothing published`);
    }
  });
});

// ---------------------------------------------------------------------------------------
// (c) duplicates, (d) reordering

test('(c) every observation delivered twice gives exactly one change per instance', async () => {
  const outcomes = [
    { powerState: PowerState.SHUTOFF, row: { power_state: PowerState.SHUTOFF, vm_state: VmState.SHUTOFF, missed_reports: 0 }, rule: 'stopped' },
    { powerState: null, row: { power_state: PowerState.NOSTATE, vm_state: VmState.ACTIVE, missed_reports: 1 }, rule: 'missing' },
    { powerState: PowerState.PAUSED, row: { power_state: PowerState.PAUSED, vm_state: VmState.ACTIVE, missed_reports: 0 }, rule: 'power-only' },
  ] as const;
  const rows = Array.from({ length: 21 }, () => newInstance());
  await insert(rows);
  const observedAt = new Date();
  const planned = rows.map((row, index) => {
    const outcome = outcomes[index % outcomes.length];
    assert.ok(outcome !== undefined);
    return { row, outcome, obs: observation(row.uuid, outcome.powerState, observedAt) };
  });
  // Some redelivered right away (likely the same batch), the others after all of them (likely a later one).
  for (const { obs } of planned.slice(0, 10)) {
    publish(obs);
    publish(obs);
  }
  for (const { obs } of planned.slice(10)) publish(obs);
  for (const { obs } of planned.slice(10)) publish(obs);
  await settle();

  const current = await readRows(rows.map((row) => row.uuid));
  const outbox = await outboxChanges(rows.map((row) => row.uuid));
  for (const { row, outcome, obs } of planned) {
    const found = current.get(row.uuid);
    assert.deepEqual(
      { power_state: found?.power_state, vm_state: found?.vm_state, missed_reports: found?.missed_reports },
      outcome.row,
    );
    assert.deepEqual(found?.power_state_updated_at, observedAt);
    const changes = outbox.get(row.uuid) ?? [];
    assert.equal(changes.length, 1, `one change for ${outcome.rule}`);
    assert.equal(changes[0]?.event.rule, outcome.rule);
    assert.equal(changes[0]?.event.observationId, obs.observationId);
  }
  await waitForOutboxPublished();
  await waitFor('the change events on the exchange', () => rows.every((row) => deliveredChanges(row.uuid).length > 0), WAIT);
  for (const row of rows) assert.equal(deliveredChanges(row.uuid).length, 1, `one change event delivered for ${row.uuid}`);
});

test('(d) newer observation delivered first: the row ends in the newer state and the older one is skipped', async () => {
  const row = newInstance();
  await insert([row]);
  const base = Date.now();
  const older = observation(row.uuid, PowerState.PAUSED, new Date(base + 1_000));
  const newer = observation(row.uuid, PowerState.SHUTOFF, new Date(base + 2_000));

  publish(newer);
  await waitFor('the newer observation to be committed', async () => (await readRow(row.uuid))?.power_state === PowerState.SHUTOFF, WAIT);
  publish(older);
  await settle();

  const current = await readRow(row.uuid);
  assert.equal(current?.power_state, PowerState.SHUTOFF);
  assert.equal(current?.vm_state, VmState.SHUTOFF);
  assert.deepEqual(current?.power_state_updated_at, new Date(newer.observedAt));
  const found = (await outboxChanges([row.uuid])).get(row.uuid) ?? [];
  assert.deepEqual(found.map((change) => change.event.observationId), [newer.observationId], 'only the newer one committed a change');
});

test('(d) newer and older observation of one instance arriving together: the newer state wins', async () => {
  const row = newInstance();
  await insert([row]);
  const base = Date.now();
  const older = observation(row.uuid, PowerState.PAUSED, new Date(base + 1_000));
  const newer = observation(row.uuid, PowerState.SHUTOFF, new Date(base + 2_000));
  publish(newer);
  publish(older);
  await settle();

  const current = await readRow(row.uuid);
  assert.equal(current?.power_state, PowerState.SHUTOFF);
  assert.deepEqual(current?.power_state_updated_at, new Date(newer.observedAt));
  // In one batch both apply in observedAt order; in two, the older is stale. Either way the newer is last.
  const found = (await outboxChanges([row.uuid])).get(row.uuid) ?? [];
  assert.ok(found.length === 1 || found.length === 2, `one or two changes, got ${found.length}`);
  assert.equal(found.at(-1)?.event.observationId, newer.observationId);
  assert.deepEqual(found.at(-1)?.event.after, { powerState: PowerState.SHUTOFF, vmState: VmState.SHUTOFF });
  if (found.length === 2) {
    assert.equal(found[0]?.event.observationId, older.observationId);
    assert.deepEqual(found[1]?.event.before, found[0]?.event.after);
  }
});

// ---------------------------------------------------------------------------------------
// (e) dead-lettering

test('(e) malformed JSON, a wrong schemaVersion and an unknown power-state code are dead-lettered with a reason, and the writer goes on', async () => {
  const target = newInstance();
  const after_ = newInstance();
  await insert([target, after_]);
  const targetBefore = await readRow(target.uuid);
  const routingKey = observationRoutingKey(host);
  const [valid] = groupObservations([observation(target.uuid, PowerState.SHUTOFF, new Date())]);
  assert.ok(valid !== undefined);
  const bad = {
    'malformed-json': Buffer.from('{"schemaVersion": 1, "observations": '),
    'wrong-schema-version': Buffer.from(JSON.stringify({ ...valid, schemaVersion: 2 })),
    'unknown-power-state': Buffer.from(JSON.stringify({ ...valid, observations: valid.observations.map((o) => ({ ...o, powerState: 10 })) })),
  };
  for (const [name, body] of Object.entries(bad)) probe.publish(Exchange.observations, routingKey, body, { 'x-test-case': name });

  const next = observation(after_.uuid, PowerState.PAUSED, new Date());
  publish(next);
  await waitFor('an observation published after the bad ones to be committed', async () => (await readRow(after_.uuid))?.power_state === PowerState.PAUSED, WAIT);

  const dead = await probe.drain(Queue.deadLetter, 3, WAIT.timeoutMs);
  assert.equal(dead.length, 3);
  const byCase = new Map(dead.map((message) => [String(message.properties.headers?.['x-test-case']), message]));
  const reasons = Object.fromEntries(
    Object.keys(bad).map((name) => [name, String(byCase.get(name)?.properties.headers?.[REASON_HEADER])]),
  );
  assert.match(reasons['malformed-json'] ?? '', /^not JSON: /);
  assert.equal(reasons['wrong-schema-version'], 'unsupported schemaVersion 2 (expected 1)');
  assert.match(reasons['unknown-power-state'] ?? '', /^observations\.0\.powerState: /);
  for (const [name, body] of Object.entries(bad)) {
    const message = byCase.get(name);
    assert.ok(message !== undefined, `${name} dead-lettered`);
    assert.deepEqual(message.content, body, `${name}: the original bytes`);
    assert.equal(message.properties.headers?.['x-virtsync-queue'], Queue.stateWriter);
    assert.equal(message.properties.headers?.['x-virtsync-routing-key'], routingKey);
  }
  assert.deepEqual(await readRow(target.uuid), targetBefore, 'no bad message touched the row');
  assert.equal(await probe.messageCount(Queue.deadLetter), 0);
});

// ---------------------------------------------------------------------------------------
// (f) two writers

test('(f) two writers on overlapping batches of 2,000 observations over 200 instances: no deadlock, no lost update', async (t) => {
  const fleetHost = `fleet-${suffix}`;
  const logStart = logs.records.length;
  dbB = createDatabase({ url: database.url, log: testLogger });
  const busB = connectBus({ url: vhost.amqpUrl, name: 'test state-writer b', log: testLogger });
  buses.push(busB);
  // Smaller batches on B: more, shorter transactions cutting across A's.
  writerB = await startService(stateWriter, { config: writerConfig({ WRITER_BATCH_SIZE: '100' }), db: dbB, bus: busB, log: logs.logger('b') });
  // startStateWriter resolves before its bus has connected; the consumer registers once it has.
  await waitFor('both writers to consume the queue', async () => (await probe.channel.checkQueue(Queue.stateWriter)).consumerCount === 2, WAIT);

  const duplicated = Array.from({ length: 100 }, () => newInstance({ host: fleetHost }));
  const sequenced = Array.from({ length: 100 }, () => newInstance({ host: fleetHost }));
  await insert([...duplicated, ...sequenced]);
  const base = Date.now();
  const duplicateObs = new Map(duplicated.map((row) => [row.uuid, observation(row.uuid, PowerState.SHUTOFF, new Date(base), fleetHost)]));
  // Ten successive states per instance; only the last (newest) is SHUTOFF, the others alternate PAUSED / SUSPENDED.
  const sequenceObs = new Map(
    sequenced.map((row) => [
      row.uuid,
      Array.from({ length: 10 }, (_, k) =>
        observation(row.uuid, k === 9 ? PowerState.SHUTOFF : k % 2 === 0 ? PowerState.PAUSED : PowerState.SUSPENDED, new Date(base + k * 10), fleetHost),
      ),
    ]),
  );
  const all = [...[...duplicateObs.values()].flatMap((obs) => Array.from({ length: 10 }, () => obs)), ...[...sequenceObs.values()].flat()];
  assert.equal(all.length, 2_000);
  for (const obs of shuffle(all, 0x5eed)) publish(obs);

  const committed = (writer: string) =>
    logs.records.slice(logStart).filter((r) => r.msg === 'batch committed' && r.writer === writer).reduce((sum, r) => sum + (typeof r.observations === 'number' ? r.observations : 0), 0);
  await waitFor('both writers to commit all 2,000 observations', () => committed('a') + committed('b') >= 2_000, { timeoutMs: 25_000 });
  assert.equal(committed('a') + committed('b'), 2_000);
  assert.ok(committed('a') > 0 && committed('b') > 0, `both writers took part (a: ${committed('a')}, b: ${committed('b')})`);
  assert.equal(await probe.messageCount(Queue.stateWriter), 0);

  const trouble = logs.records
    .slice(logStart)
    .filter((r) => typeof r.level === 'number' && r.level >= 40 && r.msg !== 'message rejected to the dead-letter queue');
  assert.deepEqual(trouble, [], 'no batch rolled back (deadlock or otherwise), retried or requeued');

  const rows = await readRows([...duplicated, ...sequenced].map((row) => row.uuid));
  for (const row of duplicated) {
    const current = rows.get(row.uuid);
    assert.equal(current?.power_state, PowerState.SHUTOFF);
    assert.equal(current?.vm_state, VmState.SHUTOFF);
    assert.deepEqual(current?.power_state_updated_at, new Date(base));
  }
  for (const row of sequenced) {
    const current = rows.get(row.uuid);
    assert.equal(current?.power_state, PowerState.SHUTOFF, 'the newest observation wins');
    assert.equal(current?.vm_state, VmState.SHUTOFF);
    assert.deepEqual(current?.power_state_updated_at, new Date(base + 90));
  }

  const outbox = await outboxChanges([...duplicated, ...sequenced].map((row) => row.uuid));
  for (const row of duplicated) {
    const found = outbox.get(row.uuid) ?? [];
    assert.equal(found.length, 1, 'ten copies of one observation: one change');
    assert.equal(found[0]?.event.observationId, duplicateObs.get(row.uuid)?.observationId);
  }
  for (const row of sequenced) {
    const found = outbox.get(row.uuid) ?? [];
    const observations = sequenceObs.get(row.uuid) ?? [];
    assert.ok(found.length >= 1 && found.length <= 10, `1 to 10 changes, got ${found.length}`);
    // No lost update: in commit order, each change starts from the state the previous one left.
    let state: ChangeEvent['before'] = { powerState: PowerState.RUNNING, vmState: VmState.ACTIVE };
    let lastObservedAt = -Infinity;
    for (const { event } of found) {
      assert.deepEqual(event.before, state, 'each change starts where the previous one ended');
      assert.ok(Date.parse(event.observedAt) > lastObservedAt, 'changes are committed in observation order');
      assert.ok(observations.some((obs) => obs.observationId === event.observationId));
      state = event.after;
      lastObservedAt = Date.parse(event.observedAt);
    }
    assert.deepEqual(state, { powerState: PowerState.SHUTOFF, vmState: VmState.SHUTOFF });
    assert.equal(found.at(-1)?.event.observationId, observations[9]?.observationId);
  }
  const chained = sequenced.map((row) => (outbox.get(row.uuid) ?? []).length);
  t.diagnostic(`observations committed by a: ${committed('a')}, by b: ${committed('b')}; changes per sequenced instance: ${Math.min(...chained)} to ${Math.max(...chained)}`);
  await waitForOutboxPublished();
});

// ---------------------------------------------------------------------------------------
// (g) stopping

test('(g) stop() is safe to call twice, waits for in-flight work, and acks it', async () => {
  assert.ok(writerB !== undefined);
  await Promise.all([writerB.stop(), writerB.stop()]);
  await writerB.stop();

  const rows = Array.from({ length: 30 }, () => newInstance());
  await insert(rows);
  const blocked = rows[0];
  assert.ok(blocked !== undefined);
  // Hold one row's lock, so the writer's batch is in flight (delivered, unacked) while it stops.
  const holder = await database.db.startTransaction().execute();
  let held = true;
  try {
    await sql`select uuid from instances where uuid = ${blocked.uuid} for update`.execute(holder);
    const observedAt = new Date();
    for (const row of rows) publish(observation(row.uuid, PowerState.SHUTOFF, observedAt));
    await waitFor('the writer to wait for the held row lock', writerWaitsForLock, WAIT);

    let stoppedAt: number | undefined;
    const stops = [writerA.stop(), writerA.stop()];
    void Promise.all(stops).then(
      () => {
        stoppedAt = Date.now();
      },
      () => undefined,
    );
    // (A quorum queue keeps counting a cancelled consumer while it holds unacked messages,
    // so the consumer count cannot show the cancel here.) The batch is still blocked:
    assert.ok(await writerWaitsForLock(), 'the batch is still in flight');
    assert.equal(stoppedAt, undefined, 'stop() waits for the batch in flight');
    assert.equal((await readRow(rows[1]!.uuid))?.power_state, PowerState.RUNNING, 'nothing committed yet');

    await holder.commit().execute();
    held = false;
    await Promise.all(stops);
    await writerA.stop();
  } finally {
    if (held) await holder.rollback().execute();
  }

  const queue = await probe.channel.checkQueue(Queue.stateWriter);
  assert.equal(queue.messageCount, 0, 'nothing requeued: the in-flight batch was acked');
  assert.equal(queue.consumerCount, 0);
  const current = await readRows(rows.map((row) => row.uuid));
  for (const row of rows) assert.equal(current.get(row.uuid)?.power_state, PowerState.SHUTOFF, 'the in-flight batch was committed');
  assert.equal(await countUnpublished(database.db), 0, 'the relay published what was committed before stopping');
  await waitFor('the in-flight batch\'s change events on the exchange', () => rows.every((row) => deliveredChanges(row.uuid).length === 1), WAIT);
});

async function writerWaitsForLock(): Promise<boolean> {
  const { rows } = await sql<{ waiting: string }>`
    select count(*) as waiting from pg_stat_activity
     where datname = current_database() and wait_event_type = 'Lock'`.execute(database.db);
  return Number(rows[0]?.waiting) > 0;
}

// ---------------------------------------------------------------------------------------

interface LogRecord {
  level?: unknown;
  msg?: unknown;
  writer?: unknown;
  observations?: unknown;
  [field: string]: unknown;
}

/** Loggers whose JSON lines are kept in memory, so a test can see what the writers reported. */
function createLogCapture(): { records: LogRecord[]; logger(writer: string): Logger } {
  const records: LogRecord[] = [];
  const root = pino(
    { level: 'info' },
    {
      write(line: string) {
        const parsed: unknown = JSON.parse(line);
        if (typeof parsed === 'object' && parsed !== null) records.push({ ...parsed });
      },
    },
  );
  return { records, logger: (writer) => root.child({ writer }) };
}

/** Deterministic Fisher-Yates (mulberry32), so a failing order can be replayed. */
function shuffle<T>(items: readonly T[], seed: number): T[] {
  let state = seed >>> 0;
  const random = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  const result = [...items];
  for (let i = result.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [result[i], result[j]] = [result[j] as T, result[i] as T];
  }
  return result;
}
