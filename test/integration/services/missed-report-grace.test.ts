/**
 * Missed-report grace on the real writer: with MISSING_GRACE_CYCLES=3 an instance becomes
 * NOSTATE only on its third consecutive miss, the count (kept in instance_sync_state, not in
 * the cloud's row) survives a writer restart and an agent restart, a redelivered miss is not
 * counted twice, and finding the instance again resets it.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { after, before, test } from 'node:test';
import type { Observation } from '../../../shared/messages/observation.ts';
import { PowerState } from '../../../shared/power-state.ts';
import { waitFor } from '../../../tools/wait-for.ts';
import type { BusProbe } from '../../helpers/bus-probe.ts';
import { lookSequence, observationOf, publishObservations, type RowAsRead } from '../../helpers/observations.ts';
import type { TestDatabase } from '../../helpers/test-database.ts';
import { openWriterRig, type WriterRig } from '../../helpers/writer-rig.ts';

const HOST = 'grace-host';
const uuid = randomUUID();
let rig: WriterRig;
let database: TestDatabase;
let probe: BusProbe;
/** The agent's looks; replaced when the agent restarts (a new epoch, its sequence from 1 again). */
let nextLook = lookSequence(1);

before(async () => {
  rig = await openWriterRig();
  ({ database, probe } = rig);
  await database.db.insertInto('instances').values({ uuid, host: HOST, power_state: PowerState.RUNNING, vm_state: 'active' }).execute();
});

after(async () => {
  await rig?.close();
});

async function startWriter(): Promise<void> {
  await rig.startWriter({ MISSING_GRACE_CYCLES: '3' });
}

/** A tick's look at the host: the row as the agent read it just before, and what libvirt said. */
async function observation(powerState: PowerState | null): Promise<Observation> {
  const row: RowAsRead = await database.db.selectFrom('instances').selectAll().where('uuid', '=', uuid).executeTakeFirstOrThrow();
  return observationOf(row, powerState, nextLook(), { tickId: randomUUID() });
}

async function state(): Promise<{ missed: number; power: PowerState; look: string | null }> {
  const row = await database.db
    .selectFrom('instances as i')
    .leftJoin('instance_sync_state as s', 's.uuid', 'i.uuid')
    .select(['s.missed_reports', 'i.power_state', 's.look_epoch', 's.look_seq'])
    .where('i.uuid', '=', uuid)
    .executeTakeFirstOrThrow();
  return { missed: row.missed_reports ?? 0, power: row.power_state, look: row.look_epoch === null ? null : `${row.look_epoch}.${row.look_seq}` };
}

/**
 * Publishes an observation of another instance and waits for it: with one writer consuming
 * in order, everything published before it has been decided by then.
 */
async function decidedSoFar(): Promise<void> {
  const sentinel = { uuid: randomUUID(), host: HOST, power_state: PowerState.RUNNING, vm_state: 'active' as const };
  await database.db.insertInto('instances').values(sentinel).execute();
  publishObservations(probe, [observationOf(sentinel, PowerState.PAUSED, nextLook())]);
  await waitFor(
    'the sentinel decided',
    async () => (await database.db.selectFrom('instances').select('power_state').where('uuid', '=', sentinel.uuid).executeTakeFirstOrThrow()).power_state === PowerState.PAUSED,
    { timeoutMs: 30_000 },
  );
}

async function deliver(message: Observation, expected: { missed: number; power: PowerState }): Promise<void> {
  publishObservations(probe, [message]);
  const look = `${message.look?.epoch}.${message.look?.seq}`;
  await waitFor(
    `look ${look} decided: missed_reports=${expected.missed} power_state=${expected.power}`,
    async () => JSON.stringify(await state()) === JSON.stringify({ ...expected, look }),
    { timeoutMs: 30_000 },
  );
}

test('NOSTATE only on the third consecutive miss, across a writer restart', async () => {
  await startWriter();
  const first = await observation(null);
  await deliver(first, { missed: 1, power: PowerState.RUNNING });
  // Redelivered: the same miss must not count twice.
  publishObservations(probe, [first]);
  await deliver(await observation(null), { missed: 2, power: PowerState.RUNNING });
  // Redelivered after a newer look was decided: still stale, still not counted.
  publishObservations(probe, [first]);
  await decidedSoFar();
  assert.deepEqual(await state(), { missed: 2, power: PowerState.RUNNING, look: '1.2' }, 'the redelivered miss was not counted');

  await startWriter();
  // The agent restarted too: a new epoch, its sequence from 1 again, still a newer look.
  nextLook = lookSequence(2);
  await deliver(await observation(null), { missed: 3, power: PowerState.NOSTATE });

  const outbox = await database.db.selectFrom('change_outbox').select('payload').where(sql<string>`payload->>'instanceUuid'`, '=', uuid).execute();
  assert.equal(outbox.length, 1, 'one committed change: the NOSTATE one; counting misses changes nothing else');
  const row = await database.db.selectFrom('instances').select(['missed_reports', 'last_missed_at', 'power_state_updated_at']).where('uuid', '=', uuid).executeTakeFirstOrThrow();
  assert.deepEqual(row, { missed_reports: 0, last_missed_at: null, power_state_updated_at: null }, 'the cloud\'s row holds none of virtsync\'s bookkeeping');
});

test('found again: the count resets and the state follows the hypervisor', async () => {
  await deliver(await observation(PowerState.RUNNING), { missed: 0, power: PowerState.RUNNING });
});
