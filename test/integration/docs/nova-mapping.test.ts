/**
 * docs/integration.md's worked example, run as written: virtsync migrated into a schema of
 * its own next to a Nova-shaped `nova.instances`, its `instances` table replaced by the
 * documented view. The writer's own code (applyObservations) then stops a running instance
 * in Nova's terms (power_state 4, vm_state 'stopped'), keeps its bookkeeping in
 * virtsync.instance_sync_state, leaves a row with a task in progress alone, and the agent's
 * read (readHostInstances) sees the instance as virtsync expects it.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Kysely, sql } from 'kysely';
import { createDatabase } from '../../../shared/db/connect.ts';
import type { Database } from '../../../shared/db/database.ts';
import { readHostInstances } from '../../../shared/db/instances.ts';
import { migrateToLatest } from '../../../shared/db/migrate.ts';
import { PowerState } from '../../../shared/power-state.ts';
import { SEED_POLICY } from '../../../shared/sync-rules.ts';
import { VmState } from '../../../shared/vm-state.ts';
import { applyObservations } from '../../../services/state-writer/apply-observations.ts';
import { loadConfig, toolsEnv } from '../../../shared/config.ts';
import { dropDatabase, recreateDatabase } from '../../../tools/db-admin.ts';
import { testLogger } from '../../helpers/test-logger.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const doc = readFileSync(path.join(ROOT, 'docs/integration.md'), 'utf8');
const mappingSql = /<!-- nova-mapping:begin -->\s*```sql\n([\s\S]*?)```\s*<!-- nova-mapping:end -->/.exec(doc)?.[1];

const host = 'cmp-0042';
const running = randomUUID();
const busy = randomUUID();
// An empty database, like a cloud's before virtsync: nothing of virtsync's in public.
const serverUrl = loadConfig(toolsEnv).databaseUrl;
const name = `virtsync_test_nova_${randomUUID().slice(0, 8)}`;
let cloud: Kysely<Database>;
let virtsync: Kysely<Database>;

before(async () => {
  assert.ok(mappingSql !== undefined, 'docs/integration.md has the nova-mapping SQL block');
  const url = await recreateDatabase(serverUrl, name);
  cloud = createDatabase({ url, log: testLogger, maxConnections: 2 });
  // Nova's instances table, the columns virtsync maps (Nova has many more).
  await sql`create schema nova`.execute(cloud);
  await sql`
    create table nova.instances (
      id serial primary key,
      uuid varchar(36) not null unique,
      host varchar(255),
      power_state integer,
      vm_state varchar(255),
      task_state varchar(255),
      created_at timestamp default (now() at time zone 'utc'),
      updated_at timestamp,
      deleted_at timestamp,
      deleted integer not null default 0
    )`.execute(cloud);
  await sql`insert into nova.instances (uuid, host, power_state, vm_state, task_state, updated_at) values
    (${running}, ${host}, 1, 'active', null, now() at time zone 'utc' - interval '1 hour'),
    (${busy}, ${host}, 1, 'active', 'powering-off', now() at time zone 'utc' - interval '1 hour')`.execute(cloud);
  await sql`create schema virtsync`.execute(cloud);
  virtsync = createDatabase({ url: `${url}?options=${encodeURIComponent('-c search_path=virtsync')}`, log: testLogger, maxConnections: 2 });
  await migrateToLatest(virtsync, testLogger);
  await sql.raw(mappingSql ?? '').execute(cloud);
});

after(async () => {
  await virtsync?.destroy();
  await cloud?.destroy();
  await dropDatabase(serverUrl, name);
});

test('the agent reads Nova rows through the view as virtsync rows', async () => {
  const rows = await readHostInstances(virtsync, host);
  assert.deepEqual(
    rows.sort((a, b) => a.uuid.localeCompare(b.uuid)),
    [running, busy].sort().map((uuid) => ({ uuid, powerState: PowerState.RUNNING, vmState: VmState.ACTIVE, taskState: uuid === busy ? 'powering-off' : null, missedReports: 0, shadowed: false })),
  );
});

test("the writer stops a running instance in Nova's terms and keeps its bookkeeping in its own table", async () => {
  const observedAt = new Date().toISOString();
  const observation = (instanceUuid: string, taskState: string | null, seq: number) => ({
    observationId: randomUUID(),
    instanceUuid,
    powerState: PowerState.SHUTOFF,
    expected: { powerState: PowerState.RUNNING, vmState: VmState.ACTIVE, taskState },
    host,
    observedAt,
    look: { epoch: 1, seq },
    trigger: 'tick' as const,
    tickId: null,
  });
  const result = await applyObservations(virtsync, [observation(running, null, 1), observation(busy, 'powering-off', 1)], SEED_POLICY);
  assert.deepEqual(result.outcomes, { stopped: 1, 'task-in-progress': 1 });

  const { rows } = await sql<{ uuid: string; power_state: number; vm_state: string }>`select uuid, power_state, vm_state from nova.instances order by uuid`.execute(cloud);
  const byUuid = Object.fromEntries(rows.map((row) => [row.uuid, [row.power_state, row.vm_state]]));
  assert.deepEqual(byUuid[running], [4, 'stopped'], "Nova's SHUTDOWN and stopped");
  assert.deepEqual(byUuid[busy], [1, 'active'], 'a task in progress: untouched');

  const state = await sql<{ uuid: string; written_power_state: number | null }>`select uuid, written_power_state from virtsync.instance_sync_state where written_power_state is not null`.execute(cloud);
  assert.deepEqual(state.rows.map((row) => [row.uuid, row.written_power_state]), [[running, PowerState.SHUTOFF]]);

  // Read back through the view: shutoff, as the hypervisor said; the next look finds it equal.
  const [viewRow] = (await readHostInstances(virtsync, host)).filter((row) => row.uuid === running);
  assert.deepEqual([viewRow?.powerState, viewRow?.vmState], [PowerState.SHUTOFF, VmState.SHUTOFF]);
  const again = await applyObservations(
    virtsync,
    [{ ...observation(running, null, 2), expected: { powerState: PowerState.SHUTOFF, vmState: VmState.SHUTOFF, taskState: null } }],
    SEED_POLICY,
  );
  assert.deepEqual(again.outcomes, { equal: 1 });
});
