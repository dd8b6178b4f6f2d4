/**
 * Missed-report grace on the real writer: with MISSING_GRACE_CYCLES=3 an instance becomes
 * NOSTATE only on its third consecutive miss, the count survives a writer restart, a
 * redelivered miss is not counted twice, and finding the instance again resets it.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { type BusConnection, connectBus } from '../../../shared/bus/connect.ts';
import { loadConfig, stateWriterEnv } from '../../../shared/config.ts';
import type { Observation } from '../../../shared/messages/observation.ts';
import { PowerState } from '../../../shared/power-state.ts';
import { type RunningService, startService } from '../../../shared/service-runner.ts';
import { stateWriter } from '../../../services/state-writer/state-writer.ts';
import { waitFor } from '../../../tools/wait-for.ts';
import { type BusProbe, openBusProbe } from '../../helpers/bus-probe.ts';
import { publishObservations } from '../../helpers/observations.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/test-database.ts';
import { testLogger } from '../../helpers/test-logger.ts';
import { createTestVhost, type TestVhost } from '../../helpers/test-vhost.ts';

const HOST = 'grace-host';
const uuid = randomUUID();
let database: TestDatabase;
let vhost: TestVhost;
let probe: BusProbe;
let bus: BusConnection;
let writer: RunningService | undefined;
let clockMs = Date.now();

before(async () => {
  database = await createTestDatabase();
  vhost = await createTestVhost();
  probe = await openBusProbe(vhost.amqpUrl);
  bus = connectBus({ url: vhost.amqpUrl, name: 'test writer', log: testLogger });
  await database.db.insertInto('instances').values({ uuid, host: HOST, power_state: PowerState.RUNNING, vm_state: 'active' }).execute();
});

after(async () => {
  await writer?.stop();
  await bus?.close();
  await probe?.close();
  await vhost?.delete();
  await database?.drop();
});

async function startWriter(): Promise<void> {
  const config = loadConfig(stateWriterEnv, { DATABASE_URL: database.url, AMQP_URL: vhost.amqpUrl, MISSING_GRACE_CYCLES: '3', WRITER_BATCH_LINGER_MS: '10' });
  writer = await startService(stateWriter, { config, db: database.db, bus, log: testLogger });
}

function observation(powerState: PowerState | null): Observation {
  clockMs += 1_000;
  return {
    observationId: randomUUID(),
    instanceUuid: uuid,
    host: HOST,
    powerState,
    observedAt: new Date(clockMs).toISOString(),
    trigger: 'tick',
    tickId: randomUUID(),
  };
}

async function deliver(message: Observation, expected: { missed: number; power: PowerState }): Promise<void> {
  publishObservations(probe, [message]);
  await waitFor(
    `missed_reports=${expected.missed} power_state=${expected.power}`,
    async () => {
      const row = await database.db.selectFrom('instances').select(['missed_reports', 'power_state']).where('uuid', '=', uuid).executeTakeFirstOrThrow();
      return row.missed_reports === expected.missed && row.power_state === expected.power;
    },
    { timeoutMs: 10_000 },
  );
}

test('NOSTATE only on the third consecutive miss, across a writer restart', async () => {
  await startWriter();
  const first = observation(null);
  await deliver(first, { missed: 1, power: PowerState.RUNNING });
  // Redelivered: the same miss must not count twice.
  publishObservations(probe, [first]);
  await deliver(observation(null), { missed: 2, power: PowerState.RUNNING });

  await writer?.stop();
  await startWriter();
  await deliver(observation(null), { missed: 3, power: PowerState.NOSTATE });

  const outbox = await database.db.selectFrom('change_outbox').select('payload').execute();
  assert.equal(outbox.length, 1, 'one committed change: the NOSTATE one; counting misses changes nothing else');
});

test('found again: the count resets and the state follows the hypervisor', async () => {
  await deliver(observation(PowerState.RUNNING), { missed: 0, power: PowerState.RUNNING });
});
