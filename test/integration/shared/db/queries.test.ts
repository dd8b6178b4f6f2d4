/**
 * The batched queries in shared/db against a real, migrated PostgreSQL database: what
 * each one reads and writes, SKIP LOCKED between two outbox claimers, the audit log's
 * dedupe on event_id, and the table's CHECK constraints.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { type KyselyPlugin, sql } from 'kysely';
import { appendAuditEntries } from '../../../../shared/db/audit-log.ts';
import { claimUnpublished, countUnpublished, deletePublishedBefore, insertOutboxEvents, markPublished, releaseClaims } from '../../../../shared/db/change-outbox.ts';
import type { NewInstance } from '../../../../shared/db/database.ts';
import type { ChangeEvent } from '../../../../shared/messages/change-event.ts';
import { lockInstances, readHostInstances, writeSyncStates } from '../../../../shared/db/instances.ts';
import { PowerState } from '../../../../shared/power-state.ts';
import { VmState } from '../../../../shared/vm-state.ts';
import { createTestDatabase, type TestDatabase } from '../../../helpers/test-database.ts';

const suffix = randomBytes(3).toString('hex');
const hostA = `queries-a-${suffix}`;
const hostB = `queries-b-${suffix}`;
let database: TestDatabase;

before(async () => {
  database = await createTestDatabase();
});

after(async () => {
  await database?.drop();
});

function instance(overrides: Partial<NewInstance> & { host: string }): NewInstance {
  return { uuid: randomUUID(), power_state: PowerState.RUNNING, vm_state: VmState.ACTIVE, ...overrides };
}

/** The SQLSTATE of a failed query (pg puts it on the error as `code`). */
async function sqlState(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof Error, 'rejected with an Error');
    const code: unknown = Object.getOwnPropertyDescriptor(err, 'code')?.value;
    assert.equal(typeof code, 'string', `a SQLSTATE on: ${err.message}`);
    return String(code);
  }
  assert.fail('expected the query to fail');
}

describe('instances', () => {
  const live = [instance({ host: hostA }), instance({ host: hostA, power_state: PowerState.SHUTOFF, vm_state: VmState.SHUTOFF, task_state: 'powering-on' })];
  const deleted = instance({ host: hostA, deleted_at: new Date('2024-01-01T00:00:00Z') });
  const elsewhere = instance({ host: hostB });

  before(async () => {
    await database.db.insertInto('instances').values([...live, deleted, elsewhere]).execute();
    // virtsync's bookkeeping lives beside the cloud's row, not in it.
    await database.db.insertInto('instance_sync_state').values({ uuid: live[1]!.uuid, missed_reports: 2 }).execute();
  });

  test("readHostInstances returns only the host's live rows", async () => {
    const rows = await readHostInstances(database.db, hostA);
    const byUuid = new Map(rows.map((row) => [row.uuid, row]));
    assert.equal(rows.length, 2);
    assert.deepEqual(byUuid.get(live[0]!.uuid), { uuid: live[0]!.uuid, powerState: PowerState.RUNNING, vmState: VmState.ACTIVE, taskState: null, missedReports: 0, shadowed: false });
    assert.deepEqual(byUuid.get(live[1]!.uuid), {
      uuid: live[1]!.uuid,
      powerState: PowerState.SHUTOFF,
      vmState: VmState.SHUTOFF,
      taskState: 'powering-on',
      missedReports: 2,
      shadowed: false,
    });
    assert.deepEqual(await readHostInstances(database.db, `nobody-${suffix}`), []);
  });

  test('lockInstances returns snapshots with the deleted flag and virtsync\'s bookkeeping, and holds the row locks', async () => {
    const snapshotRow = instance({ host: hostB, power_state: PowerState.PAUSED, vm_state: VmState.PAUSED, task_state: 'rebooting' });
    await database.db.insertInto('instances').values(snapshotRow).execute();
    await database.db
      .insertInto('instance_sync_state')
      .values({ uuid: snapshotRow.uuid, look_host: hostB, look_epoch: 7, look_seq: 2 ** 40, written_power_state: PowerState.PAUSED, written_vm_state: VmState.PAUSED, missed_reports: 1 })
      .execute();
    const absent = randomUUID();

    await database.db.transaction().execute(async (trx) => {
      // Upper case on the way in: PostgreSQL prints uuids lower-case, and the map is keyed by what it prints.
      const snapshots = await lockInstances(trx, [snapshotRow.uuid.toUpperCase(), deleted.uuid, live[0]!.uuid, absent]);
      assert.deepEqual([...snapshots.keys()].sort(), [snapshotRow.uuid, deleted.uuid, live[0]!.uuid].sort());
      assert.deepEqual(snapshots.get(snapshotRow.uuid), {
        host: hostB,
        powerState: PowerState.PAUSED,
        vmState: VmState.PAUSED,
        deleted: false,
        taskState: 'rebooting',
        missedReports: 1,
        lastLook: { host: hostB, epoch: 7, seq: 2 ** 40 },
        written: { powerState: PowerState.PAUSED, vmState: VmState.PAUSED },
      });
      assert.equal(snapshots.get(deleted.uuid)?.deleted, true);
      assert.equal(snapshots.get(live[0]!.uuid)?.deleted, false);
      assert.equal(snapshots.get(live[0]!.uuid)?.lastLook, null, 'no bookkeeping yet');

      // Another transaction cannot take the lock while this one holds it.
      const code = await sqlState(
        database.db.transaction().execute((other) =>
          sql`select uuid from instances where uuid = ${snapshotRow.uuid} for update nowait`.execute(other),
        ),
      );
      assert.equal(code, '55P03', 'lock_not_available');
    });
    assert.deepEqual(await database.db.transaction().execute((trx) => lockInstances(trx, [])), new Map());
  });

  test('writeSyncStates writes the changed rows in one statement, the bookkeeping of every row in another, and leaves other rows alone', async () => {
    const rows = [instance({ host: hostA }), instance({ host: hostA }), instance({ host: hostA, vm_state: VmState.MIGRATING })];
    const bystander = instance({ host: hostA });
    await database.db.insertInto('instances').values([...rows, bystander]).execute();
    const before = await database.db.selectFrom('instances').selectAll().where('uuid', '=', bystander.uuid).executeTakeFirstOrThrow();

    let statements = 0;
    const counter: KyselyPlugin = {
      transformQuery(args) {
        statements++;
        return args.node;
      },
      transformResult: async (args) => args.result,
    };
    const observedAt = '2025-02-03T04:05:06.789Z';
    const lastLook = { host: hostA, epoch: 3, seq: 41 };
    await database.db.withPlugin(counter).transaction().execute(async (trx) => {
      const snapshots = await lockInstances(trx, rows.map((row) => row.uuid));
      statements = 0;
      const written = { powerState: PowerState.SHUTOFF, vmState: VmState.SHUTOFF };
      await writeSyncStates(trx, [
        { uuid: rows[0]!.uuid, state: { ...snapshots.get(rows[0]!.uuid)!, ...written, written, lastLook }, changesRow: true, observedAt },
        { uuid: rows[1]!.uuid, state: { ...snapshots.get(rows[1]!.uuid)!, missedReports: 3, lastLook }, changesRow: false, observedAt },
        { uuid: rows[2]!.uuid, state: { ...snapshots.get(rows[2]!.uuid)!, lastLook }, changesRow: false, observedAt },
      ]);
      assert.equal(statements, 2, 'one statement for the changed rows, one for the bookkeeping');
      await writeSyncStates(trx, []);
      assert.equal(statements, 2, 'an empty batch sends nothing');
    });

    const after = await database.db
      .selectFrom('instances')
      .select(['uuid', 'power_state', 'vm_state', 'host', 'task_state', 'deleted_at'])
      .where('uuid', 'in', rows.map((row) => row.uuid))
      .execute();
    const byUuid = new Map(after.map((row) => [row.uuid, row]));
    const common = { host: hostA, task_state: null, deleted_at: null };
    assert.deepEqual(byUuid.get(rows[0]!.uuid), { ...common, uuid: rows[0]!.uuid, power_state: PowerState.SHUTOFF, vm_state: VmState.SHUTOFF });
    assert.deepEqual(byUuid.get(rows[1]!.uuid), { ...common, uuid: rows[1]!.uuid, power_state: PowerState.RUNNING, vm_state: VmState.ACTIVE });
    assert.deepEqual(byUuid.get(rows[2]!.uuid), { ...common, uuid: rows[2]!.uuid, power_state: PowerState.RUNNING, vm_state: VmState.MIGRATING });
    const bookkeeping = await database.db
      .selectFrom('instance_sync_state')
      .select(['uuid', 'look_host', 'look_epoch', 'look_seq', 'written_power_state', 'missed_reports', 'observed_at'])
      .where('uuid', 'in', rows.map((row) => row.uuid))
      .execute();
    const kept = new Map(bookkeeping.map((row) => [row.uuid, row]));
    assert.deepEqual(kept.get(rows[0]!.uuid), {
      uuid: rows[0]!.uuid, look_host: hostA, look_epoch: '3', look_seq: '41', written_power_state: PowerState.SHUTOFF, missed_reports: 0, observed_at: new Date(observedAt),
    });
    assert.equal(kept.get(rows[1]!.uuid)?.missed_reports, 3);
    assert.equal(kept.get(rows[2]!.uuid)?.written_power_state, null, 'a row virtsync never changed has no written state');
    const untouched = await database.db.selectFrom('instances').selectAll().where('uuid', '=', bystander.uuid).executeTakeFirstOrThrow();
    assert.deepEqual(untouched, before);
  });

  test('the CHECK constraints reject power_state 10 and an unknown vm_state', async () => {
    const insertRaw = (powerState: number, vmState: string) =>
      sql`insert into instances (uuid, host, power_state, vm_state) values (${randomUUID()}, ${hostA}, ${powerState}, ${vmState})`.execute(database.db);
    assert.equal(await sqlState(insertRaw(10, VmState.ACTIVE)), '23514', 'check_violation');
    assert.equal(await sqlState(insertRaw(-1, VmState.ACTIVE)), '23514', 'check_violation');
    assert.equal(await sqlState(insertRaw(PowerState.RUNNING, 'hibernating')), '23514', 'check_violation');
    // The edges of the allowed range go in.
    await insertRaw(0, VmState.SOFT_DELETED);
    await insertRaw(9, VmState.ERROR);
  });
});

describe('change_outbox', () => {
  const events = Array.from({ length: 10 }, (_, index) => ({
    eventId: randomUUID(),
    routingKey: `instance.${hostA}.running`,
    // Every other one a report-only writer's proposal: the relay gets each row's type back.
    messageType: index % 2 === 0 ? 'instance-change' : 'proposed-change',
    payload: { index, nested: { ok: true } },
  }));

  before(async () => {
    await database.db.transaction().execute((trx) => insertOutboxEvents(trx, events));
  });

  const claim = (claimant: string, limit: number, options: { olderThanMs?: number; claimTtlMs?: number } = {}) =>
    claimUnpublished(database.db, { limit, olderThanMs: options.olderThanMs ?? 0, claimant, claimTtlMs: options.claimTtlMs ?? 60_000 });

  test('rows younger than the handover grace are left to the writer that committed them', async () => {
    assert.deepEqual(await claim('relay-a', 100, { olderThanMs: 60_000 }), []);
  });

  test('claims are taken in one statement: relays never get the same rows, oldest first, and no transaction stays open', async () => {
    assert.equal(await countUnpublished(database.db), 10);
    // Two relays claiming at the same instant, on two connections.
    const [first, second] = await Promise.all([claim('relay-a', 4), claim('relay-b', 4)]);
    const third = await claim('relay-c', 100);
    const all = [...first, ...second, ...third];
    assert.equal(new Set(all.map((event) => event.eventId)).size, 10, 'no row handed out twice');
    assert.deepEqual(new Set(all.map((event) => event.eventId)), new Set(events.map((event) => event.eventId)));
    for (const batch of [first, second, third]) {
      const seqs = batch.map((event) => BigInt(event.seq));
      assert.deepEqual(seqs, [...seqs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)), 'each claim oldest first');
    }
    assert.deepEqual([first.length, second.length, third.length], [4, 4, 2]);
    const idle = await sql<{ count: string }>`select count(*) as count from pg_stat_activity where datname = current_database() and state like 'idle in transaction%'`.execute(database.db);
    assert.equal(Number(idle.rows[0]?.count), 0, 'nothing left idle in a transaction');
    const owners = await database.db.selectFrom('change_outbox').select(['locked_by']).where('published_at', 'is', null).execute();
    assert.ok(owners.every((row) => row.locked_by !== null));

    // All claimed and fresh: nobody else gets them.
    assert.deepEqual(await claim('relay-d', 100), []);
    // relay-b could not publish: its rows go back at once.
    await releaseClaims(database.db, second.map((event) => event.eventId), 'relay-b');
    assert.deepEqual((await claim('relay-d', 100)).map((event) => event.eventId), second.map((event) => event.eventId));
    // relay-c died: its claims expire and are taken over.
    assert.deepEqual((await claim('relay-e', 100, { claimTtlMs: 0 })).map((event) => event.eventId).sort(), [...first, ...second, ...third].map((event) => event.eventId).sort());
    await markPublished(database.db, events.slice(0, 4).map((event) => event.eventId));
    for (const event of all) assert.equal(event.routingKey, `instance.${hostA}.running`);
    assert.deepEqual(
      new Map(all.map((event) => [event.eventId, event.messageType])),
      new Map(events.map((event) => [event.eventId, event.messageType])),
      'each row comes back with its message type',
    );
  });

  test('markPublished sets published_at and countUnpublished counts the rest; published rows are never claimed', async () => {
    assert.equal(await countUnpublished(database.db), 6);
    const published = await database.db.selectFrom('change_outbox').select(['event_id', 'published_at']).where('published_at', 'is not', null).execute();
    assert.deepEqual(new Set(published.map((row) => row.event_id)), new Set(events.slice(0, 4).map((event) => event.eventId)));
    for (const row of published) assert.ok(row.published_at instanceof Date);

    const rest = await claim('relay-f', 100, { claimTtlMs: 0 });
    assert.deepEqual(rest.map((event) => event.eventId), events.slice(4).map((event) => event.eventId));
    await markPublished(database.db, rest.map((event) => event.eventId));
    await markPublished(database.db, []);
    assert.equal(await countUnpublished(database.db), 0);
    assert.deepEqual(await claim('relay-g', 10, { claimTtlMs: 0 }), []);
  });

  test('deletePublishedBefore deletes only rows published longer ago than the retention, oldest first, at most the limit', async () => {
    const fresh = Array.from({ length: 3 }, () => ({ eventId: randomUUID(), routingKey: `instance.${hostA}.paused`, messageType: 'instance-change', payload: {} }));
    await database.db.transaction().execute((trx) => insertOutboxEvents(trx, fresh));
    // The ten above were published an hour ago; of the three new ones, one a second ago and two never.
    await sql`update change_outbox set published_at = now() - interval '1 hour' where event_id = any(${sql.val(events.map((e) => e.eventId))}::uuid[])`.execute(database.db);
    await markPublished(database.db, [fresh[0]?.eventId ?? '']);
    const left = async (): Promise<string[]> => (await database.db.selectFrom('change_outbox').select('event_id').orderBy('seq').execute()).map((row) => row.event_id);

    assert.equal(await deletePublishedBefore(database.db, 60_000, 4), 4);
    assert.deepEqual(await left(), [...events.slice(4), ...fresh].map((e) => e.eventId), 'the four oldest went first');
    assert.equal(await deletePublishedBefore(database.db, 60_000, 100), 6);
    assert.deepEqual(await left(), fresh.map((e) => e.eventId), 'published a second ago, or not at all: kept');
    assert.equal(await deletePublishedBefore(database.db, 60_000, 100), 0);
    assert.equal(await countUnpublished(database.db), 2);
  });
});

describe('audit_log', () => {
  function entry(): ChangeEvent {
    return {
      schemaVersion: 1,
      eventId: randomUUID(),
      instanceUuid: randomUUID(),
      host: hostA,
      rule: 'stopped',
      before: { powerState: PowerState.RUNNING, vmState: VmState.ACTIVE },
      after: { powerState: PowerState.SHUTOFF, vmState: VmState.SHUTOFF },
      observationId: randomUUID(),
      observedAt: '2025-01-01T00:00:00.000Z',
      committedAt: '2025-01-01T00:00:01.000Z',
    };
  }

  test('appendAuditEntries returns how many rows were new and ignores a duplicate event_id', async () => {
    const [a, b, c] = [entry(), entry(), entry()];
    assert.equal(await appendAuditEntries(database.db, [a, b]), 2);
    assert.equal(await appendAuditEntries(database.db, [a, { ...b, rule: 'running' }, c]), 1, 'only c is new');
    assert.equal(await appendAuditEntries(database.db, [c]), 0);
    assert.equal(await appendAuditEntries(database.db, []), 0);

    const rows = await database.db.selectFrom('audit_log').selectAll().where('event_id', 'in', [a.eventId, b.eventId, c.eventId]).execute();
    assert.equal(rows.length, 3);
    const stored = rows.find((row) => row.event_id === b.eventId);
    assert.equal(stored?.rule, 'stopped', 'the first write wins');
    assert.deepEqual(stored?.observed_at, new Date('2025-01-01T00:00:00.000Z'));
    assert.ok(stored?.recorded_at instanceof Date);
  });

  test('a duplicate event_id inside one batch is recorded once', async () => {
    const d = entry();
    assert.equal(await appendAuditEntries(database.db, [d, { ...d }]), 1);
    const rows = await database.db.selectFrom('audit_log').select('event_id').where('event_id', '=', d.eventId).execute();
    assert.equal(rows.length, 1);
  });
});

