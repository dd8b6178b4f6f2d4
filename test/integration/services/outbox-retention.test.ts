/**
 * Outbox retention on the real writer: a committed change is published, stays in the
 * outbox while within OUTBOX_RETENTION_MS, and is deleted by the relay's poll after it.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { Message } from 'amqplib';
import { type BusConnection, connectBus } from '../../../shared/bus/connect.ts';
import { Exchange } from '../../../shared/bus/topology.ts';
import { loadConfig, stateWriterEnv } from '../../../shared/config.ts';
import { PowerState } from '../../../shared/power-state.ts';
import { type RunningService, startService } from '../../../shared/service-runner.ts';
import { stateWriter } from '../../../services/state-writer/state-writer.ts';
import { waitFor } from '../../../tools/wait-for.ts';
import { type BusProbe, openBusProbe } from '../../helpers/bus-probe.ts';
import { observationOf, publishObservations } from '../../helpers/observations.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/test-database.ts';
import { testLogger } from '../../helpers/test-logger.ts';
import { createTestVhost, type TestVhost } from '../../../tools/local-env/vhost.ts';

const HOST = 'retention-host';
const RETENTION_MS = 1_500;
const uuid = randomUUID();
let database: TestDatabase;
let vhost: TestVhost;
let probe: BusProbe;
let bus: BusConnection;
let writer: RunningService | undefined;
let changes: Message[];

before(async () => {
  database = await createTestDatabase();
  vhost = await createTestVhost();
  probe = await openBusProbe(vhost.amqpUrl);
  changes = await probe.collect(Exchange.changes, 'instance.#');
  bus = connectBus({ url: vhost.amqpUrl, name: 'test writer', log: testLogger });
  await database.db.insertInto('instances').values({ uuid, host: HOST, power_state: PowerState.RUNNING, vm_state: 'active' }).execute();
  const config = loadConfig(stateWriterEnv, {
    DATABASE_URL: database.url,
    AMQP_URL: vhost.amqpUrl,
    OUTBOX_POLL_MS: '100',
    OUTBOX_RETENTION_MS: String(RETENTION_MS),
  });
  writer = await startService(stateWriter, { config, db: database.db, bus, log: testLogger });
});

after(async () => {
  await writer?.stop();
  await bus?.close();
  await probe?.close();
  await vhost?.delete();
  await database?.drop();
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
