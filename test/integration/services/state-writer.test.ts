/**
 * The state writer in-process on real PostgreSQL and RabbitMQ: observations published as
 * raw bytes (with the agent's look and the row as it read it), rows inserted directly,
 * results read back from the cloud's table, virtsync's bookkeeping (instance_sync_state),
 * the outbox, the changes exchange and the dead-letter queue. One writer serves the file; a
 * second one joins for the concurrency test, and both are stopped by the last tests.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { Message } from 'amqplib';
import { type Insertable, type Kysely, sql } from 'kysely';
import { pino } from 'pino';
import { connectBus, type BusConnection } from '../../../shared/bus/connect.ts';
import { Exchange, observationRoutingKey, Queue, REASON_HEADER } from '../../../shared/bus/topology.ts';
import { loadConfig, stateWriterEnv } from '../../../shared/config.ts';
import { countUnpublished } from '../../../shared/db/change-outbox.ts';
import { createDatabase } from '../../../shared/db/connect.ts';
import type { Database, InstanceSyncStateTable, NewInstance } from '../../../shared/db/database.ts';
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
import { lookSequence, observationOf, publishObservations, type RowAsRead } from '../../helpers/observations.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/test-database.ts';
import { testLogger } from '../../helpers/test-logger.ts';
import { createTestVhost, type TestVhost } from '../../../tools/local-env/vhost.ts';

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

/** This file's agent: one look order for every observation it makes up (each row keeps its own bookkeeping). */
const nextLook = lookSequence(10);

/** A current agent's observation: `row` as the agent read it, a fresh look, stamped now. */
function observation(row: RowAsRead, powerState: PowerState | null, overrides: Partial<Observation> = {}): Observation {
  return observationOf(row, powerState, nextLook(), overrides);
}

/** An observation from an agent that predates look ordering: no look, no expected row. */
function legacyObservation(row: RowAsRead, powerState: PowerState | null): Observation {
  const { look: _look, expected: _expected, ...legacy } = observation(row, powerState);
  return legacy;
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

type NewSyncState = Omit<Insertable<InstanceSyncStateTable>, 'uuid'>;

async function insertSyncState(uuid: string, state: NewSyncState): Promise<void> {
  await database.db.insertInto('instance_sync_state').values({ uuid, ...state }).execute();
}

/** virtsync's bookkeeping of a row, without the columns only the database decides (uuid, updated_at). */
async function readSyncState(uuid: string) {
  return database.db
    .selectFrom('instance_sync_state')
    .select(['look_host', 'look_epoch', 'look_seq', 'written_power_state', 'written_vm_state', 'missed_reports', 'observed_at'])
    .where('uuid', '=', uuid)
    .executeTakeFirst();
}

async function readSyncStates(uuids: readonly string[]) {
  const rows = await database.db.selectFrom('instance_sync_state').selectAll().where('uuid', 'in', [...uuids]).execute();
  return new Map(rows.map((row) => [row.uuid, row]));
}

/** The bookkeeping a decision on `obs` leaves behind (node-postgres returns bigint columns as strings). */
function syncStateAfter(obs: Observation, written: { powerState: PowerState; vmState: VmState } | null, missedReports: number) {
  assert.ok(obs.look !== undefined);
  return {
    look_host: obs.host,
    look_epoch: String(obs.look.epoch),
    look_seq: String(obs.look.seq),
    written_power_state: written?.powerState ?? null,
    written_vm_state: written?.vmState ?? null,
    missed_reports: missedReports,
    observed_at: new Date(obs.observedAt),
  };
}

/**
 * Publishes one more observation and waits until it is committed. With a single writer
 * consuming, batches are committed one after another in delivery order, so everything
 * published before it has been decided and acked by then.
 */
async function settle(): Promise<void> {
  const sentinel = newInstance();
  await insert([sentinel]);
  publish(observation(sentinel, PowerState.PAUSED));
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
  /** The row (updated_at included) and virtsync's bookkeeping of it are as they were. */
  | { kind: 'unchanged' }
  /** No row, and none created (nor any bookkeeping). */
  | { kind: 'absent' }
  /**
   * Decided on: the look is recorded in instance_sync_state with the miss count. With a
   * change, power_state/vm_state (and updated_at) change and the written state is recorded;
   * without one (a count, or confirming an equal state), the cloud's row is not touched at all.
   */
  | {
      kind: 'decided';
      powerState: PowerState;
      vmState: VmState;
      missedReports: number;
      change?: { rule: UpdateRule; stateWord: string };
    };

interface RuleCase {
  name: string;
  row: NewInstance;
  /** false: the row does not exist (hard-deleted) when the observation arrives. */
  inserted: boolean;
  /** virtsync's bookkeeping of the row before the observation, if any. */
  syncState?: NewSyncState;
  obs: Observation;
  expect: Expectation;
}

describe('(a, b) one observation per rule branch', () => {
  const longAgo = new Date(Date.now() - 3_600_000);
  const unchanged: Expectation = { kind: 'unchanged' };
  /** A look older than any nextLook() hands out, but of a newer agent process (higher epoch). */
  const restartedAgentLook = { look_host: host, look_epoch: 11, look_seq: 1 };
  const fixedLook = { epoch: 10, seq: 500_000 };

  const build = (
    name: string,
    row: NewInstance,
    observe: (row: NewInstance) => Observation,
    expect: Expectation,
    extra: { inserted?: boolean; syncState?: NewSyncState } = {},
  ): RuleCase => ({ name, row, inserted: extra.inserted ?? true, syncState: extra.syncState, obs: observe(row), expect });

  const cases: RuleCase[] = [
    build('stopped: SHUTOFF on an ACTIVE row sets power_state and vm_state SHUTOFF', newInstance(), (row) => observation(row, PowerState.SHUTOFF), {
      kind: 'decided', powerState: PowerState.SHUTOFF, vmState: VmState.SHUTOFF, missedReports: 0, change: { rule: 'stopped', stateWord: 'shutoff' },
    }),
    build('stopped: CRASHED on an ACTIVE row', newInstance(), (row) => observation(row, PowerState.CRASHED), {
      kind: 'decided', powerState: PowerState.CRASHED, vmState: VmState.SHUTOFF, missedReports: 0, change: { rule: 'stopped', stateWord: 'crashed' },
    }),
    build('running: RUNNING on a SHUTOFF row makes it ACTIVE', newInstance({ power_state: PowerState.SHUTOFF, vm_state: VmState.SHUTOFF }), (row) => observation(row, PowerState.RUNNING), {
      kind: 'decided', powerState: PowerState.RUNNING, vmState: VmState.ACTIVE, missedReports: 0, change: { rule: 'running', stateWord: 'running' },
    }),
    build('running: BLOCKED counts as running', newInstance({ power_state: PowerState.PAUSED, vm_state: VmState.PAUSED }), (row) => observation(row, PowerState.BLOCKED), {
      kind: 'decided', powerState: PowerState.BLOCKED, vmState: VmState.ACTIVE, missedReports: 0, change: { rule: 'running', stateWord: 'blocked' },
    }),
    build('power-only: PAUSED changes power_state only', newInstance(), (row) => observation(row, PowerState.PAUSED), {
      kind: 'decided', powerState: PowerState.PAUSED, vmState: VmState.ACTIVE, missedReports: 0, change: { rule: 'power-only', stateWord: 'paused' },
    }),
    build('power-only: SHUTOFF on a row that is not ACTIVE keeps its vm_state', newInstance({ power_state: PowerState.PAUSED, vm_state: VmState.PAUSED }), (row) => observation(row, PowerState.SHUTOFF), {
      kind: 'decided', powerState: PowerState.SHUTOFF, vmState: VmState.PAUSED, missedReports: 0, change: { rule: 'power-only', stateWord: 'shutoff' },
    }),
    build('missing: unknown to the hypervisor sets NOSTATE and counts the miss in instance_sync_state', newInstance(), (row) => observation(row, null), {
      kind: 'decided', powerState: PowerState.NOSTATE, vmState: VmState.ACTIVE, missedReports: 1, change: { rule: 'missing', stateWord: 'nostate' },
    }),
    build('reappeared: found again in agreement resets the missed count, the row untouched', newInstance(), (row) => observation(row, PowerState.RUNNING), {
      kind: 'decided', powerState: PowerState.RUNNING, vmState: VmState.ACTIVE, missedReports: 0,
    }, { syncState: { missed_reports: 1 } }),
    build('moved: not found here, the row names another host', newInstance({ host: otherHost }), (row) => observation({ ...row, host }, null), unchanged),
    build('migrating-in: not found here, the row is MIGRATING to this host', newInstance({ vm_state: VmState.MIGRATING }), (row) => observation(row, null), unchanged),
    build('deleted (soft): a row with deleted_at set is left alone', newInstance({ deleted_at: longAgo }), (row) => observation(row, PowerState.SHUTOFF), unchanged),
    build('deleted (hard): no row, none is created', newInstance(), (row) => observation(row, PowerState.SHUTOFF), { kind: 'absent' }, { inserted: false }),
    build('stale-host: found on a host that does not own the row', newInstance({ host: otherHost }), (row) => observation({ ...row, host }, PowerState.SHUTOFF), unchanged),
    build('stale-observation: a newer look of the same host was already decided on', newInstance(), (row) => observation(row, PowerState.SHUTOFF), unchanged, {
      syncState: { look_host: host, look_epoch: 10, look_seq: 1_000_000 },
    }),
    build('stale-observation: the same look again (a redelivery) changes nothing', newInstance(), (row) => observationOf(row, PowerState.SHUTOFF, fixedLook), unchanged, {
      syncState: { look_host: host, look_epoch: fixedLook.epoch, look_seq: fixedLook.seq },
    }),
    build('stale-observation: a restarted agent (higher epoch) already looked, whatever this look\'s sequence', newInstance(), (row) => observationOf(row, PowerState.SHUTOFF, { epoch: 10, seq: 999_999 }), unchanged, {
      syncState: restartedAgentLook,
    }),
    build('a newer look of another host (the previous owner) does not make this host\'s look stale', newInstance(), (row) => observation(row, PowerState.SHUTOFF), {
      kind: 'decided', powerState: PowerState.SHUTOFF, vmState: VmState.SHUTOFF, missedReports: 0, change: { rule: 'stopped', stateWord: 'shutoff' },
    }, { syncState: { look_host: otherHost, look_epoch: 99, look_seq: 99 } }),
    build('changed-after-read: the cloud changed power_state after the agent read the row', newInstance(), (row) => observation({ ...row, power_state: PowerState.PAUSED }, PowerState.SHUTOFF), unchanged),
    build('changed-after-read: the cloud finished an operation (task_state cleared) after the agent read the row', newInstance(), (row) => observation({ ...row, task_state: 'rebooting' }, PowerState.SHUTOFF), unchanged),
    build('not changed-after-read: virtsync\'s own write since the agent\'s read is not the cloud\'s, and the newer look applies', newInstance({ power_state: PowerState.PAUSED }), (row) => observation({ ...row, power_state: PowerState.RUNNING }, PowerState.SHUTOFF), {
      kind: 'decided', powerState: PowerState.SHUTOFF, vmState: VmState.SHUTOFF, missedReports: 0, change: { rule: 'stopped', stateWord: 'shutoff' },
    }, { syncState: { look_host: host, look_epoch: 9, look_seq: 1, written_power_state: PowerState.PAUSED, written_vm_state: VmState.ACTIVE } }),
    build('task-in-progress: the cloud has an operation running', newInstance({ task_state: 'rebooting' }), (row) => observation(row, PowerState.SHUTOFF), unchanged),
    // Confirming the state as of the look, so an older one arriving later is stale.
    build('equal: the hypervisor agrees with the row; the look is recorded, the row untouched', newInstance({ power_state: PowerState.PAUSED, vm_state: VmState.PAUSED }), (row) => observation(row, PowerState.PAUSED), {
      kind: 'decided', powerState: PowerState.PAUSED, vmState: VmState.PAUSED, missedReports: 0,
    }),
    build('legacy-contract: an old agent\'s observation (no look, no expected row) is skipped', newInstance(), (row) => legacyObservation(row, PowerState.SHUTOFF), unchanged),
  ];
  const initial: Map<string, Awaited<ReturnType<typeof readRow>>> = new Map();
  const initialSync: Map<string, Awaited<ReturnType<typeof readSyncState>>> = new Map();

  before(async () => {
    await insert(cases.flatMap((c) => (c.inserted ? [c.row] : [])));
    for (const c of cases) if (c.syncState !== undefined) await insertSyncState(c.row.uuid, c.syncState);
    for (const c of cases) {
      initial.set(c.obs.instanceUuid, await readRow(c.obs.instanceUuid));
      initialSync.set(c.obs.instanceUuid, await readSyncState(c.obs.instanceUuid));
    }
    for (const c of cases) publish(c.obs);
    await settle();
  });

  for (const c of cases) {
    test(c.name, async () => {
      const uuid = c.obs.instanceUuid;
      const row = await readRow(uuid);
      const syncState = await readSyncState(uuid);
      const previous = initial.get(uuid);
      const previousSync = initialSync.get(uuid);
      const { expect } = c;
      if (expect.kind === 'absent') {
        assert.equal(row, undefined);
        assert.equal(syncState, undefined, 'no bookkeeping for a row that does not exist');
      } else if (expect.kind === 'unchanged') {
        assert.ok(previous !== undefined);
        assert.deepEqual(row, previous, 'the row, updated_at included, is untouched');
        assert.deepEqual(syncState, previousSync, 'virtsync\'s bookkeeping of the row is untouched');
      } else if (expect.change === undefined) {
        assert.ok(previous !== undefined);
        assert.deepEqual(row, previous, 'no change: the cloud\'s row, updated_at included, is untouched');
        const written = previousSync?.written_power_state != null && previousSync.written_vm_state != null
          ? { powerState: previousSync.written_power_state, vmState: previousSync.written_vm_state }
          : null;
        assert.deepEqual(syncState, syncStateAfter(c.obs, written, expect.missedReports), 'the look is recorded');
      } else {
        assert.ok(previous !== undefined && row !== undefined);
        // The deprecated bookkeeping columns (power_state_updated_at, missed_reports, last_missed_at) are neither read nor written.
        assert.deepEqual(row, { ...previous, power_state: expect.powerState, vm_state: expect.vmState, updated_at: row.updated_at });
        assert.ok(row.updated_at.getTime() >= previous.updated_at.getTime());
        assert.deepEqual(
          syncState,
          syncStateAfter(c.obs, { powerState: expect.powerState, vmState: expect.vmState }, expect.missedReports),
          'the look and what virtsync wrote are recorded',
        );
      }
    });
  }

  test('legacy-contract: the old agent\'s observation is logged at info with its rule, and not dead-lettered', async () => {
    const legacy = cases.find((c) => c.obs.look === undefined);
    assert.ok(legacy !== undefined);
    const logged = logs.records.filter((r) => r.instanceUuid === legacy.obs.instanceUuid);
    assert.deepEqual(
      logged.map((r) => ({ level: r.level, msg: r.msg, rule: r.rule })),
      [{ level: 30, msg: 'observation left the row unchanged', rule: 'legacy-contract' }],
    );
    assert.equal(await probe.messageCount(Queue.deadLetter), 0, 'nothing dead-lettered');
  });

  test('(b) each committed change is in change_outbox with its routing key, and gets published_at set', async () => {
    await waitForOutboxPublished();
    const outbox = await outboxChanges(cases.map((c) => c.obs.instanceUuid));
    for (const c of cases) {
      const found = outbox.get(c.obs.instanceUuid) ?? [];
      if (c.expect.kind !== 'decided' || c.expect.change === undefined) {
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
    const expected = cases.filter((c) => c.expect.kind === 'decided' && c.expect.change !== undefined);
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
    { powerState: PowerState.SHUTOFF, row: { power_state: PowerState.SHUTOFF, vm_state: VmState.SHUTOFF }, missedReports: 0, rule: 'stopped' },
    { powerState: null, row: { power_state: PowerState.NOSTATE, vm_state: VmState.ACTIVE }, missedReports: 1, rule: 'missing' },
    { powerState: PowerState.PAUSED, row: { power_state: PowerState.PAUSED, vm_state: VmState.ACTIVE }, missedReports: 0, rule: 'power-only' },
  ] as const;
  const rows = Array.from({ length: 21 }, () => newInstance());
  await insert(rows);
  // One look of the host covers every instance, as a tick's host sync does.
  const look = nextLook();
  const planned = rows.map((row, index) => {
    const outcome = outcomes[index % outcomes.length];
    assert.ok(outcome !== undefined);
    return { row, outcome, obs: observationOf(row, outcome.powerState, look) };
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
    assert.deepEqual({ power_state: found?.power_state, vm_state: found?.vm_state }, outcome.row);
    assert.equal(found?.missed_reports, 0, 'the deprecated column is not written');
    assert.deepEqual(
      await readSyncState(row.uuid),
      syncStateAfter(obs, { powerState: outcome.row.power_state, vmState: outcome.row.vm_state }, outcome.missedReports),
      'a redelivered miss is counted once',
    );
    const changes = outbox.get(row.uuid) ?? [];
    assert.equal(changes.length, 1, `one change for ${outcome.rule}`);
    assert.equal(changes[0]?.event.rule, outcome.rule);
    assert.equal(changes[0]?.event.observationId, obs.observationId);
  }
  await waitForOutboxPublished();
  await waitFor('the change events on the exchange', () => rows.every((row) => deliveredChanges(row.uuid).length > 0), WAIT);
  for (const row of rows) assert.equal(deliveredChanges(row.uuid).length, 1, `one change event delivered for ${row.uuid}`);
});

test('(d) newer look delivered first: the row ends in the newer state and the older look is skipped, whatever their stamps', async () => {
  const row = newInstance();
  await insert([row]);
  // Both agents' reads saw the row as inserted. The older look carries the later stamp (a clock
  // far ahead), the newer one a stamp an hour behind: stamps order nothing.
  const older = observation(row, PowerState.PAUSED, { observedAt: '3000-01-01T00:00:00.000Z' });
  const newer = observation(row, PowerState.SHUTOFF, { observedAt: new Date(Date.now() - 3_600_000).toISOString(), trigger: 'event' });

  publish(newer);
  await waitFor('the newer observation to be committed', async () => (await readRow(row.uuid))?.power_state === PowerState.SHUTOFF, WAIT);
  publish(older);
  await settle();

  const current = await readRow(row.uuid);
  assert.equal(current?.power_state, PowerState.SHUTOFF);
  assert.equal(current?.vm_state, VmState.SHUTOFF);
  assert.equal(current?.power_state_updated_at, null, 'the deprecated stamp is not written');
  assert.deepEqual(await readSyncState(row.uuid), syncStateAfter(newer, { powerState: PowerState.SHUTOFF, vmState: VmState.SHUTOFF }, 0), 'the newer look stays recorded');
  const found = (await outboxChanges([row.uuid])).get(row.uuid) ?? [];
  assert.deepEqual(found.map((change) => change.event.observationId), [newer.observationId], 'only the newer one committed a change');
});

test('(d) newer and older look of one instance arriving together: the newer state wins', async () => {
  const row = newInstance();
  await insert([row]);
  const older = observation(row, PowerState.PAUSED, { observedAt: '3000-01-01T00:00:00.000Z' });
  const newer = observation(row, PowerState.SHUTOFF, { observedAt: '2000-01-01T00:00:00.000Z', trigger: 'event' });
  publish(newer);
  publish(older);
  await settle();

  const current = await readRow(row.uuid);
  assert.equal(current?.power_state, PowerState.SHUTOFF);
  assert.deepEqual(await readSyncState(row.uuid), syncStateAfter(newer, { powerState: PowerState.SHUTOFF, vmState: VmState.SHUTOFF }, 0));
  // In one batch both apply in look order; in two, the older is stale. Either way the newer is last.
  const found = (await outboxChanges([row.uuid])).get(row.uuid) ?? [];
  assert.ok(found.length === 1 || found.length === 2, `one or two changes, got ${found.length}`);
  assert.equal(found.at(-1)?.event.observationId, newer.observationId);
  assert.deepEqual(found.at(-1)?.event.after, { powerState: PowerState.SHUTOFF, vmState: VmState.SHUTOFF });
  if (found.length === 2) {
    assert.equal(found[0]?.event.observationId, older.observationId);
    assert.deepEqual(found[1]?.event.before, found[0]?.event.after);
  }
});

test('(d) a year-3000 stamp freezes nothing: a later look with an ordinary stamp still changes the row, and the skew is warned about', async () => {
  const skewedHost = `skewed-${suffix}`;
  const row = newInstance({ host: skewedHost });
  await insert([row]);
  const future = observation(row, PowerState.RUNNING, { observedAt: '3000-01-01T00:00:00.000Z' });
  publish(future);
  await waitFor('the year-3000 look to be decided (equal)', async () => (await readSyncState(row.uuid))?.look_seq === String(future.look?.seq), WAIT);
  assert.deepEqual(await readSyncState(row.uuid), syncStateAfter(future, null, 0), 'decided equal: look recorded, nothing written');

  // The domain is shut off; the agent (its clock now right) looks again.
  const real = observation(row, PowerState.SHUTOFF);
  publish(real);
  await waitFor('the real change to be committed', async () => (await readRow(row.uuid))?.power_state === PowerState.SHUTOFF, WAIT);
  assert.equal((await readRow(row.uuid))?.vm_state, VmState.SHUTOFF);
  assert.deepEqual(await readSyncState(row.uuid), syncStateAfter(real, { powerState: PowerState.SHUTOFF, vmState: VmState.SHUTOFF }, 0));

  const warned = logs.records.filter((r) => r.level === 40 && r.host === skewedHost && typeof r.msg === 'string' && r.msg.includes('clock differs'));
  assert.equal(warned.length, 1, 'one warn for the skewed host');
  assert.ok(typeof warned[0]?.offsetMs === 'number' && warned[0].offsetMs > 0, 'the offset is measured (ahead)');
});

// ---------------------------------------------------------------------------------------
// (h) cloud writes between the agent's read and the writer's commit

test('(h) a cloud write after the agent read the row wins; the next look, made against the new row, converges', async () => {
  const row = newInstance();
  await insert([row]);
  // The agent reads RUNNING/ACTIVE; the cloud stops the instance; then the stale observation arrives.
  const stale = observation(row, PowerState.PAUSED);
  await database.db.updateTable('instances').set({ power_state: PowerState.SHUTOFF, vm_state: VmState.STOPPED, updated_at: new Date() }).where('uuid', '=', row.uuid).execute();
  const afterCloud = await readRow(row.uuid);
  publish(stale);
  await settle();
  assert.deepEqual(await readRow(row.uuid), afterCloud, 'the cloud\'s write stands');
  assert.equal(await readSyncState(row.uuid), undefined, 'a stale observation leaves no bookkeeping');
  assert.deepEqual((await outboxChanges([row.uuid])).get(row.uuid), undefined, 'no change event');

  // The next look reads the cloud's row and still finds the domain paused.
  assert.ok(afterCloud !== undefined);
  const next = observation(afterCloud, PowerState.PAUSED);
  publish(next);
  await waitFor('the next look to be committed', async () => (await readRow(row.uuid))?.power_state === PowerState.PAUSED, WAIT);
  assert.equal((await readRow(row.uuid))?.vm_state, VmState.STOPPED, 'power-only: the cloud\'s vm_state is kept');
  const found = (await outboxChanges([row.uuid])).get(row.uuid) ?? [];
  assert.deepEqual(
    found.map(({ event }) => [event.observationId, event.rule, event.before, event.after]),
    [[next.observationId, 'power-only', { powerState: PowerState.SHUTOFF, vmState: VmState.STOPPED }, { powerState: PowerState.PAUSED, vmState: VmState.STOPPED }]],
  );
});

test('(h) the cloud saving the row without changing a state column does not make the observation stale', async () => {
  const rows = Array.from({ length: 5 }, () => newInstance());
  await insert(rows);
  const observations = rows.map((row) => observation(row, PowerState.SHUTOFF));
  // A save of every row after the agent's read: updated_at and the deprecated columns move, the state does not.
  await database.db
    .updateTable('instances')
    .set({ updated_at: new Date(), power_state: PowerState.RUNNING, vm_state: VmState.ACTIVE, task_state: null, power_state_updated_at: new Date() })
    .where('uuid', 'in', rows.map((row) => row.uuid))
    .execute();
  for (const obs of observations) publish(obs);
  await settle();
  const current = await readRows(rows.map((row) => row.uuid));
  for (const row of rows) {
    assert.deepEqual([current.get(row.uuid)?.power_state, current.get(row.uuid)?.vm_state], [PowerState.SHUTOFF, VmState.SHUTOFF]);
  }
});

test('(h) a cloud write after a change virtsync committed still wins over an observation read before it', async () => {
  const row = newInstance();
  await insert([row]);
  const first = observation(row, PowerState.PAUSED);
  publish(first);
  await waitFor('the first change to be committed', async () => (await readRow(row.uuid))?.power_state === PowerState.PAUSED, WAIT);
  // A later look, read before the cloud's write below (it saw virtsync's PAUSED row).
  const paused = await readRow(row.uuid);
  assert.ok(paused !== undefined);
  const readBeforeCloud = observation(paused, PowerState.SHUTOFF);
  await database.db.updateTable('instances').set({ power_state: PowerState.RUNNING, vm_state: VmState.ACTIVE, task_state: null }).where('uuid', '=', row.uuid).execute();
  publish(readBeforeCloud);
  await settle();
  const current = await readRow(row.uuid);
  assert.deepEqual([current?.power_state, current?.vm_state], [PowerState.RUNNING, VmState.ACTIVE], 'the cloud\'s write stands');
  assert.deepEqual(await readSyncState(row.uuid), syncStateAfter(first, { powerState: PowerState.PAUSED, vmState: VmState.ACTIVE }, 0), 'still the first look\'s bookkeeping');
});

// ---------------------------------------------------------------------------------------
// (i) old agents during a rolling upgrade

test('(i) an old agent\'s messages beside a new agent\'s: the old ones are acked and skipped, the new ones applied, nothing dead-lettered', async () => {
  const rows = Array.from({ length: 6 }, () => newInstance());
  await insert(rows);
  const rowsBefore = await readRows(rows.map((row) => row.uuid));
  const logStart = logs.records.length;
  const [legacyRows, newRows] = [rows.slice(0, 3), rows.slice(3)];
  // One old-agent message of three instances, and one with a look but no expected rows (neither can be ordered safely).
  const legacy = legacyRows.map((row) => legacyObservation(row, PowerState.SHUTOFF));
  const [lookOnly] = groupObservations([observation(rows[0]!, PowerState.CRASHED)]).map((message) => ({
    ...message,
    observations: message.observations.map(({ expected: _expected, ...rest }) => rest),
  }));
  assert.ok(lookOnly !== undefined);
  publishObservations(probe, legacy);
  probe.publish(Exchange.observations, observationRoutingKey(host), lookOnly);
  const current = newRows.map((row) => observation(row, PowerState.SHUTOFF));
  publishObservations(probe, current);
  await settle();

  const rowsAfter = await readRows(rows.map((row) => row.uuid));
  for (const row of legacyRows) assert.deepEqual(rowsAfter.get(row.uuid), rowsBefore.get(row.uuid), 'an old agent\'s observation changes nothing');
  for (const row of newRows) assert.equal(rowsAfter.get(row.uuid)?.power_state, PowerState.SHUTOFF, 'a new agent\'s observation is applied');
  assert.equal((await readSyncStates(legacyRows.map((row) => row.uuid))).size, 0, 'and leaves no bookkeeping');
  const skipped = logs.records
    .slice(logStart)
    .filter((r) => r.rule === 'legacy-contract')
    .map((r) => [r.level, r.instanceUuid]);
  assert.deepEqual(
    skipped.sort(),
    [...legacyRows.map((row) => [30, row.uuid]), [30, rows[0]!.uuid]].sort(),
    'each skipped observation is logged at info with its rule',
  );
  const committed = logs.records.slice(logStart).filter((r) => r.msg === 'batch committed');
  const legacyDecided = committed.reduce((sum, r) => sum + (((r.outcomes as Record<string, number> | undefined)?.['legacy-contract']) ?? 0), 0);
  assert.equal(legacyDecided, 4, 'counted as decided by legacy-contract');
  assert.equal(await probe.messageCount(Queue.stateWriter), 0, 'acked');
  assert.equal(await probe.messageCount(Queue.deadLetter), 0, 'not dead-lettered');
});

// ---------------------------------------------------------------------------------------
// (e) dead-lettering

test('(e) malformed JSON, a wrong schemaVersion, an unknown power-state code and a look out of range are dead-lettered with a reason, and the writer goes on', async () => {
  const target = newInstance();
  const after_ = newInstance();
  await insert([target, after_]);
  const targetBefore = await readRow(target.uuid);
  const routingKey = observationRoutingKey(host);
  const [valid] = groupObservations([observation(target, PowerState.SHUTOFF)]);
  assert.ok(valid !== undefined);
  const bad = {
    'malformed-json': Buffer.from('{"schemaVersion": 1, "observations": '),
    'wrong-schema-version': Buffer.from(JSON.stringify({ ...valid, schemaVersion: 2 })),
    'unknown-power-state': Buffer.from(JSON.stringify({ ...valid, observations: valid.observations.map((o) => ({ ...o, powerState: 10 })) })),
    // A look that is there but broken is poison; only a missing one is an old agent's (legacy-contract).
    'look-out-of-range': Buffer.from(JSON.stringify({ ...valid, look: { epoch: 1, seq: 0 } })),
  };
  for (const [name, body] of Object.entries(bad)) probe.publish(Exchange.observations, routingKey, body, { 'x-test-case': name });

  const next = observation(after_, PowerState.PAUSED);
  publish(next);
  await waitFor('an observation published after the bad ones to be committed', async () => (await readRow(after_.uuid))?.power_state === PowerState.PAUSED, WAIT);

  const dead = await probe.drain(Queue.deadLetter, 4, WAIT.timeoutMs);
  assert.equal(dead.length, 4);
  const byCase = new Map(dead.map((message) => [String(message.properties.headers?.['x-test-case']), message]));
  const reasons = Object.fromEntries(
    Object.keys(bad).map((name) => [name, String(byCase.get(name)?.properties.headers?.[REASON_HEADER])]),
  );
  assert.match(reasons['malformed-json'] ?? '', /^not JSON: /);
  assert.equal(reasons['wrong-schema-version'], 'unsupported schemaVersion 2 (expected 1)');
  assert.match(reasons['unknown-power-state'] ?? '', /^observations\.0\.powerState: /);
  assert.match(reasons['look-out-of-range'] ?? '', /^look\.seq: /);
  for (const [name, body] of Object.entries(bad)) {
    const message = byCase.get(name);
    assert.ok(message !== undefined, `${name} dead-lettered`);
    assert.deepEqual(message.content, body, `${name}: the original bytes`);
    assert.equal(message.properties.headers?.['x-virtsync-queue'], Queue.stateWriter);
    assert.equal(message.properties.headers?.['x-virtsync-routing-key'], routingKey);
  }
  assert.deepEqual(await readRow(target.uuid), targetBefore, 'no bad message touched the row');
  assert.equal(await readSyncState(target.uuid), undefined, 'nor its bookkeeping');
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
  // The fleet host's agent: ten successive looks, each covering every sequenced instance, and one more
  // for the duplicated ones. Every read saw the rows as inserted (virtsync's own writes in between do
  // not make them stale). The stamps run backwards: they order nothing.
  const fleetLooks = lookSequence(7);
  const looks = Array.from({ length: 10 }, () => fleetLooks());
  const duplicateLook = fleetLooks();
  const base = Date.now();
  const stampOf = (k: number) => new Date(base - k * 1_000).toISOString();
  const duplicateObs = new Map(duplicated.map((row) => [row.uuid, observationOf(row, PowerState.SHUTOFF, duplicateLook, { observedAt: stampOf(0) })]));
  // Ten successive states per instance; only the last (newest) is SHUTOFF, the others alternate PAUSED / SUSPENDED.
  const sequenceObs = new Map(
    sequenced.map((row) => [
      row.uuid,
      looks.map((look, k) =>
        observationOf(row, k === 9 ? PowerState.SHUTOFF : k % 2 === 0 ? PowerState.PAUSED : PowerState.SUSPENDED, look, { observedAt: stampOf(k) }),
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
    .filter((r) => typeof r.level === 'number' && r.level >= 40 && r.msg !== 'message rejected to the dead-letter queue')
    // Duplicates and overtaken looks are skipped as stale by design; many in one batch is summarised at warn.
    .filter((r) => r.msg !== 'many observations of one host skipped as stale in one batch');
  assert.deepEqual(trouble, [], 'no batch rolled back (deadlock or otherwise), retried or requeued');

  // Nothing but virtsync wrote these rows: a skip as changed-after-read would be a spurious one (a
  // writer deciding against bookkeeping older than the row it locked) and loses a newer look.
  const decidedBy = (rule: string) =>
    logs.records
      .slice(logStart)
      .filter((r) => r.msg === 'batch committed')
      .reduce((sum, r) => sum + (((r.outcomes as Record<string, number> | undefined)?.[rule]) ?? 0), 0);
  t.diagnostic(`decided: ${['stopped', 'power-only', 'stale-observation', 'changed-after-read'].map((rule) => `${rule} ${decidedBy(rule)}`).join(', ')}`);
  assert.equal(decidedBy('changed-after-read'), 0, 'no observation skipped as changed after read: the cloud wrote nothing');

  const rows = await readRows([...duplicated, ...sequenced].map((row) => row.uuid));
  const syncStates = await readSyncStates([...duplicated, ...sequenced].map((row) => row.uuid));
  const shutoff = { powerState: PowerState.SHUTOFF, vmState: VmState.SHUTOFF };
  const bookkeeping = (uuid: string) => {
    const { uuid: _uuid, updated_at: _updatedAt, ...state } = syncStates.get(uuid) ?? {};
    return state;
  };
  for (const row of duplicated) {
    const current = rows.get(row.uuid);
    assert.equal(current?.power_state, PowerState.SHUTOFF);
    assert.equal(current?.vm_state, VmState.SHUTOFF);
    const obs = duplicateObs.get(row.uuid);
    assert.ok(obs !== undefined);
    assert.deepEqual(bookkeeping(row.uuid), syncStateAfter(obs, shutoff, 0));
  }
  for (const row of sequenced) {
    const current = rows.get(row.uuid);
    assert.equal(current?.power_state, PowerState.SHUTOFF, 'the newest look wins');
    assert.equal(current?.vm_state, VmState.SHUTOFF);
    const newest = sequenceObs.get(row.uuid)?.[9];
    assert.ok(newest !== undefined);
    assert.deepEqual(bookkeeping(row.uuid), syncStateAfter(newest, shutoff, 0), 'the newest look is recorded');
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
    let lastLook = -1;
    for (const { event } of found) {
      assert.deepEqual(event.before, state, 'each change starts where the previous one ended');
      const k = observations.findIndex((obs) => obs.observationId === event.observationId);
      assert.ok(k >= 0, 'a change from one of the instance\'s observations');
      assert.ok(k > lastLook, `changes are committed in look order (look ${k} after look ${lastLook})`);
      state = event.after;
      lastLook = k;
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
    const look = nextLook();
    for (const row of rows) publish(observationOf(row, PowerState.SHUTOFF, look));
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
