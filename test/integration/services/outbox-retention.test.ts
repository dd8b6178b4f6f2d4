/**
 * Outbox retention on the real writer: a committed change is published, stays in the
 * outbox while within OUTBOX_RETENTION_MS, and is deleted by the relay's poll after it.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { Message } from 'amqplib';
import { Exchange } from '../../../shared/bus/topology.ts';
import { PowerState } from '../../../shared/power-state.ts';
import { waitFor } from '../../../tools/wait-for.ts';
import type { BusProbe } from '../../helpers/bus-probe.ts';
import { observationOf, publishObservations } from '../../helpers/observations.ts';
import type { TestDatabase } from '../../helpers/test-database.ts';
import { openWriterRig, type WriterRig } from '../../helpers/writer-rig.ts';

const HOST = 'retention-host';
const RETENTION_MS = 1_500;
const uuid = randomUUID();
let rig: WriterRig;
let database: TestDatabase;
let probe: BusProbe;
let changes: Message[];

before(async () => {
  rig = await openWriterRig();
  ({ database, probe } = rig);
  changes = await probe.collect(Exchange.changes, 'instance.#');
  await database.db.insertInto('instances').values({ uuid, host: HOST, power_state: PowerState.RUNNING, vm_state: 'active' }).execute();
  await rig.startWriter({ OUTBOX_RETENTION_MS: String(RETENTION_MS) });
});

after(async () => {
  await rig?.close();
});

test('a published change is kept for OUTBOX_RETENTION_MS, then deleted from the outbox', async () => {
  publishObservations(probe, [
    observationOf({ uuid, host: HOST, power_state: PowerState.RUNNING, vm_state: 'active' }, PowerState.SHUTOFF, { epoch: 1, seq: 1 }, { trigger: 'event' }),
  ]);
  const outbox = () => database.db.selectFrom('change_outbox').select(['event_id', 'published_at']).execute();
  await waitFor('the change published and marked', async () => changes.length === 1 && (await outbox())[0]?.published_at != null, { timeoutMs: 10_000 });
  const [row] = await outbox();
  assert.ok(row?.published_at instanceof Date);

  // Several polls pass within the retention: the row stays.
  await new Promise((resolve) => setTimeout(resolve, RETENTION_MS / 3));
  assert.equal((await outbox()).length, 1, 'kept within the retention');

  await waitFor('the row deleted after the retention', async () => (await outbox()).length === 0, { timeoutMs: 10_000 });
  assert.ok(Date.now() - row.published_at.getTime() >= RETENTION_MS, 'not before the retention passed');
  const instance = await database.db.selectFrom('instances').select('power_state').where('uuid', '=', uuid).executeTakeFirstOrThrow();
  assert.equal(instance.power_state, PowerState.SHUTOFF, 'the change itself stays');
});
