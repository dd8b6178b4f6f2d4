/**
 * The `virtsync` CLI as an operator runs it: a child process per command, against this
 * file's own database and RabbitMQ vhost, checking stdout, stderr and exit codes.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { changeRoutingKey, Exchange, tickQueue } from '../../../shared/bus/topology.ts';
import { appendAuditEntries } from '../../../shared/db/audit-log.ts';
import { recordHostReports } from '../../../shared/db/host-sync-reports.ts';
import { type ChangeEvent, changeEventSchema } from '../../../shared/messages/change-event.ts';
import { encodeMessage, parseMessage } from '../../../shared/messages/codec.ts';
import { SCHEMA_VERSION } from '../../../shared/messages/fields.ts';
import { proposedChangeSchema } from '../../../shared/messages/proposed-change.ts';
import { tickSchema } from '../../../shared/messages/tick.ts';
import { PowerState, powerStateName } from '../../../shared/power-state.ts';
import { VmState } from '../../../shared/vm-state.ts';
import { DEFAULT_FLEET, planFleet } from '../../../tools/fleet/fleet-plan.ts';
import { changeEventFor } from '../../../tools/fixtures/change-events.ts';
import { type BusProbe, openBusProbe } from '../../helpers/bus-probe.ts';
import { runCli, startCli } from '../../helpers/cli-process.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/test-database.ts';
import { createTestVhost, type TestVhost } from '../../../tools/local-env/vhost.ts';

let database: TestDatabase;
let vhost: TestVhost;
let probe: BusProbe;
let env: Record<string, string>;

before(async () => {
  database = await createTestDatabase();
  vhost = await createTestVhost();
  probe = await openBusProbe(vhost.amqpUrl);
  env = { DATABASE_URL: database.url, AMQP_URL: vhost.amqpUrl };
  await database.db.insertInto('compute_hosts').values([{ host: 'h1' }, { host: 'h2' }, { host: 'h3', enabled: false }]).execute();
});

after(async () => {
  await probe?.close();
  await database?.drop();
  await vhost?.delete();
});


function publishChange(event: ChangeEvent): void {
  probe.publish(Exchange.changes, changeRoutingKey(event.host, event.after.powerState), encodeMessage(changeEventSchema, event));
}

describe('help', () => {
  test('the program lists every command and the exit codes', async () => {
    const result = await runCli(['--help'], env);
    assert.equal(result.code, 0, result.stderr);
    for (const command of ['status', 'hosts', 'unknown', 'sync', 'tail', 'history', 'migrate', 'fleet']) assert.match(result.stdout, new RegExp(`\\n  ${command}\\b`));
    assert.match(result.stdout, /Exit codes:/);
  });

  for (const command of ['status', 'hosts', 'unknown', 'sync', 'tail', 'history', 'migrate', 'fleet']) {
    test(`${command} --help`, async () => {
      const result = await runCli([command, '--help'], env);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, new RegExp(`^Usage: virtsync ${command}`));
    });
  }
});

describe('migrate', () => {
  test('on a migrated database it applies nothing and exits 0', async () => {
    const result = await runCli(['migrate'], env);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /is at the latest migration/);
    assert.doesNotMatch(result.stderr, /migration applied/);
  });
});

describe('fleet and status', () => {
  test('status --json counts what fleet generated, per power state, vm state and host', async (t) => {
    // A database of its own: the counts must be the fleet's and nothing else's.
    const fleetDatabase = await createTestDatabase();
    const fleetDir = await mkdtemp(path.join(os.tmpdir(), 'virtsync-fleet-'));
    t.after(async () => {
      await fleetDatabase.drop();
      await rm(fleetDir, { recursive: true, force: true });
    });
    const fleetEnv = { ...env, DATABASE_URL: fleetDatabase.url };

    const generated = await runCli(['fleet', '--hosts', '3', '--min-vms', '4', '--max-vms', '9', '--seed', '7', '--dir', fleetDir], fleetEnv);
    assert.equal(generated.code, 0, generated.stderr);
    assert.match(generated.stdout, /fleet generated/);
    assert.match(generated.stderr, /instance rows \(100%\)/);
    assert.deepEqual((await readdir(fleetDir)).sort(), ['sim-host-0001.xml', 'sim-host-0002.xml', 'sim-host-0003.xml']);

    // The plan is deterministic for a seed (only the UUIDs are fresh): it says what status must count.
    const plan = planFleet({ ...DEFAULT_FLEET, hosts: 3, minVmsPerHost: 4, maxVmsPerHost: 9, seed: 7 });
    const expectedPower: Record<string, number> = {};
    const expectedVm: Record<string, number> = {};
    const expectedPerHost: Record<string, number> = {};
    for (const { host, scenario } of plan.instances) {
      const name = powerStateName(scenario.row.powerState);
      expectedPower[name] = (expectedPower[name] ?? 0) + 1;
      expectedVm[scenario.row.vmState] = (expectedVm[scenario.row.vmState] ?? 0) + 1;
      expectedPerHost[host] = (expectedPerHost[host] ?? 0) + 1;
    }
    assert.match(generated.stdout, new RegExp(`instances\\s+${plan.instances.length}\\b`));

    const status = await runCli(['status', '--json'], fleetEnv);
    assert.equal(status.code, 0, status.stderr);
    const summary = JSON.parse(status.stdout);
    assert.deepEqual(summary.hosts, { registered: 3, enabled: 3, overdue: 3, failing: 0, unreachable: 0, unregisteredWithInstances: 0 });
    assert.equal(summary.instances.live, plan.instances.length);
    assert.equal(summary.instances.softDeleted, 0);
    assert.deepEqual(nonZero(summary.instances.byPowerState), expectedPower);
    assert.deepEqual(nonZero(summary.instances.byVmState), expectedVm);
    assert.deepEqual(
      Object.fromEntries(summary.hostList.map((host: { host: string; instances: number }) => [host.host, host.instances])),
      expectedPerHost,
    );

    // One host reports a sync: it has a last sync and is no longer overdue.
    await recordHostReports(fleetDatabase.db, [
      {
        schemaVersion: SCHEMA_VERSION,
        host: 'sim-host-0002',
        tickId: randomUUID(),
        cycle: 3,
        trigger: 'periodic',
        startedAt: new Date().toISOString(),
        durationMs: 42,
        outcome: 'synced',
        error: null,
        dbCount: 7,
        hypervisorCount: 7,
        compared: 7,
        drifted: 2,
        missing: 0,
        unknown: 0,
        published: 2,
      },
    ]);
    const after = JSON.parse((await runCli(['status', '--json'], fleetEnv)).stdout);
    const synced = after.hostList.find((host: { host: string }) => host.host === 'sim-host-0002');
    assert.equal(after.hosts.overdue, 2);
    assert.equal(synced.overdue, false);
    assert.deepEqual(
      { outcome: synced.lastSync.outcome, trigger: synced.lastSync.trigger, compared: synced.lastSync.compared, drifted: synced.lastSync.drifted },
      { outcome: 'synced', trigger: 'periodic', compared: 7, drifted: 2 },
    );

    const readable = await runCli(['status'], fleetEnv);
    assert.equal(readable.code, 0, readable.stderr);
    assert.match(readable.stdout, new RegExp(`${plan.instances.length} live`));
    assert.match(readable.stdout, /sim-host-0001 .* never .* OVERDUE/);
    assert.match(readable.stdout, /sim-host-0002 .* synced/);
  });

  test('fleet refuses hosts that already exist, with a clear message', async () => {
    await database.db.insertInto('compute_hosts').values({ host: 'dup-0001' }).execute();
    const dir = await mkdtemp(path.join(os.tmpdir(), 'virtsync-fleet-'));
    try {
      const result = await runCli(['fleet', '--hosts', '1', '--min-vms', '1', '--max-vms', '1', '--host-prefix', 'dup', '--dir', dir], env);
      assert.equal(result.code, 2);
      assert.match(result.stderr, /compute_hosts already has dup-0001/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('fleet --if-empty leaves a database that has hosts alone (the compose job on a second `up`)', async () => {
    const dir = path.join(os.tmpdir(), `virtsync-never-written-${randomUUID()}`);
    const result = await runCli(['fleet', '--if-empty', '--hosts', '1', '--dir', dir], env);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /fleet not generated \(--if-empty\)/);
    assert.equal(existsSync(dir), false);
  });
});

function nonZero(counts: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(counts).filter(([, count]) => count > 0));
}

describe('sync', () => {
  test('publishes a manual tick for h1 into its tick queue', async () => {
    const result = await runCli(['sync', 'h1'], env);
    assert.equal(result.code, 0, result.stderr);
    const [message, ...rest] = await probe.drain(tickQueue('h1'), 1);
    assert.equal(rest.length, 0);
    assert.ok(message !== undefined);
    const tick = parseMessage(tickSchema, message.content);
    assert.ok(tick.ok, tick.ok ? '' : tick.reason);
    assert.deepEqual({ host: tick.value.host, cycle: tick.value.cycle, trigger: tick.value.trigger }, { host: 'h1', cycle: 0, trigger: 'manual' });
    assert.equal(message.properties.messageId, tick.value.tickId);
    assert.match(result.stdout, new RegExp(`tick ${tick.value.tickId} published for h1`));
  });

  test('several hosts at once, --json; a disabled host gets its tick with a note', async () => {
    const result = await runCli(['sync', 'h2', 'h3', '--json'], env);
    assert.equal(result.code, 0, result.stderr);
    const published = JSON.parse(result.stdout) as Array<{ host: string }>;
    assert.deepEqual(published.map((tick) => tick.host), ['h2', 'h3']);
    assert.match(result.stderr, /h3 is disabled/);
    assert.equal((await probe.drain(tickQueue('h2'), 1)).length, 1);
    assert.equal((await probe.drain(tickQueue('h3'), 1)).length, 1);
  });

  test('a host missing from compute_hosts is refused unless --force', async () => {
    const refused = await runCli(['sync', 'ghost'], env);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /not in compute_hosts: ghost/);
    const forced = await runCli(['sync', '--force', 'ghost'], env);
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal((await probe.drain(tickQueue('ghost'), 1)).length, 1);
  });
});

describe('tail', () => {
  test('prints a committed change as one readable line and exits after --count', async () => {
    const tail = startCli(['tail', '--count', '1'], env);
    await tail.waitForStderr('listening for changes');
    const event = changeEventFor('h1');
    publishChange(event);
    const result = await tail.exited;
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trim().split('\n');
    assert.equal(lines.length, 1);
    assert.match(lines[0] ?? '', new RegExp(`^${event.committedAt}  ${event.instanceUuid}  h1  stopped\\s+RUNNING/active → SHUTOFF/shutoff$`));
  });

  test('--host and --state filter, --json prints the event as published', async () => {
    const tail = startCli(['tail', '--host', 'h2', '--state', 'running', '--json', '--count', '1'], env);
    await tail.waitForStderr('matching instance.h2.running');
    const running = { powerState: PowerState.RUNNING, vmState: VmState.ACTIVE };
    publishChange(changeEventFor('h1', { rule: 'running', before: { powerState: PowerState.SHUTOFF, vmState: VmState.SHUTOFF }, after: running }));
    publishChange(changeEventFor('h2'));
    const wanted = changeEventFor('h2', { rule: 'running', before: { powerState: PowerState.SHUTOFF, vmState: VmState.SHUTOFF }, after: running });
    publishChange(wanted);
    const result = await tail.exited;
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trim().split('\n');
    assert.equal(lines.length, 1);
    assert.deepEqual(changeEventSchema.parse(JSON.parse(lines[0] ?? '')), wanted);
  });

  test("--proposed follows a report-only writer's proposals, and only those", async () => {
    const tail = startCli(['tail', '--proposed', '--count', '1'], env);
    await tail.waitForStderr('listening for proposals on virtsync.changes matching proposed.*.*');
    publishChange(changeEventFor('h1'));
    const { committedAt, ...body } = changeEventFor('h1');
    const proposal = proposedChangeSchema.parse({ ...body, decidedAt: committedAt });
    probe.publish(Exchange.changes, changeRoutingKey(proposal.host, proposal.after.powerState, 'proposed'), proposal);
    const result = await tail.exited;
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trim().split('\n');
    assert.equal(lines.length, 1);
    assert.match(lines[0] ?? '', new RegExp(`^${proposal.decidedAt}  ${proposal.instanceUuid}  h1  stopped\\s+RUNNING/active → SHUTOFF/shutoff$`));
  });

  test('stops on SIGINT with exit 0', async () => {
    const tail = startCli(['tail'], env);
    await tail.waitForStderr('Ctrl-C stops');
    tail.kill('SIGINT');
    const result = await tail.exited;
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, '');
  });
});

describe('history', () => {
  const uuid = randomUUID();
  const entry = (rule: 'running' | 'stopped', at: string, before: [PowerState, VmState], afterState: [PowerState, VmState]): ChangeEvent => ({
    schemaVersion: 1,
    eventId: randomUUID(),
    instanceUuid: uuid,
    host: 'h1',
    rule,
    before: { powerState: before[0], vmState: before[1] },
    after: { powerState: afterState[0], vmState: afterState[1] },
    observationId: randomUUID(),
    observedAt: at,
    committedAt: at,
  });

  before(async () => {
    // Inserted newest first: the output must still be oldest first.
    await appendAuditEntries(database.db, [
      entry('running', '2026-01-02T10:00:00.000Z', [PowerState.SHUTOFF, VmState.SHUTOFF], [PowerState.RUNNING, VmState.ACTIVE]),
      entry('stopped', '2026-01-01T10:00:00.000Z', [PowerState.RUNNING, VmState.ACTIVE], [PowerState.SHUTOFF, VmState.SHUTOFF]),
    ]);
  });

  test('shows the audit rows of one instance, oldest first', async () => {
    const result = await runCli(['history', uuid], env);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /2 changes, oldest first/);
    const stopped = result.stdout.indexOf('RUNNING/active → SHUTOFF/shutoff');
    const running = result.stdout.indexOf('SHUTOFF/shutoff → RUNNING/active');
    assert.ok(stopped > 0 && running > stopped, result.stdout);
  });

  test('--json gives the entries oldest first', async () => {
    const result = await runCli(['history', uuid.toUpperCase(), '--json'], env);
    assert.equal(result.code, 0, result.stderr);
    const entries = JSON.parse(result.stdout) as Array<{ rule: string; instanceUuid: string; after: { powerState: number } }>;
    assert.deepEqual(entries.map((e) => e.rule), ['stopped', 'running']);
    assert.equal(entries[0]?.instanceUuid, uuid);
    assert.equal(entries[1]?.after.powerState, PowerState.RUNNING);
  });

  test('an instance with no audit rows exits 1 with a message', async () => {
    const unknown = randomUUID();
    const result = await runCli(['history', unknown], env);
    assert.equal(result.code, 1);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, new RegExp(`no audit entries for instance ${unknown}`));
  });
});

describe('bad arguments exit 2 with a clear message', () => {
  const cases: Array<[string[], RegExp]> = [
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['status', '--bogus'], /unknown option '--bogus'/],
    [['sync'], /missing required argument 'host'/],
    [['sync', 'bad host!'], /"bad host!" is not a valid host name/],
    [['tail', '--state', 'sleepy'], /"sleepy" is not a power state; one of: nostate, running/],
    [['tail', '--host', '*'], /is not a valid host name/],
    [['tail', '--count', '0'], /"0" is not a whole number/],
    [['history', 'not-a-uuid'], /"not-a-uuid" is not an instance UUID/],
    [['fleet', '--min-vms', '5', '--max-vms', '2'], /--max-vms \(2\) must be at least --min-vms \(5\)/],
    [['fleet', '--drift', '2'], /"2" is not a number from 0 to 1/],
  ];
  for (const [args, message] of cases) {
    test(`virtsync ${args.join(' ')}`, async () => {
      const result = await runCli(args, env);
      assert.equal(result.code, 2, `exit code; stderr: ${result.stderr}`);
      assert.match(result.stderr, message);
      assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
    });
  }

  test('an invalid environment names the variable', async () => {
    const result = await runCli(['status'], { ...env, DATABASE_URL: 'not a url' });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /invalid configuration:\n\s+DATABASE_URL: /);
  });
});

describe('unreachable services exit 3 with one line naming them', () => {
  test('the database', async () => {
    const result = await runCli(['status'], { ...env, DATABASE_URL: 'postgres://virtsync:sekret@127.0.0.1:1/virtsync' });
    assert.equal(result.code, 3);
    assert.equal(result.stdout, '');
    assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
    assert.match(result.stderr, /^virtsync status: cannot reach the database at 127\.0\.0\.1:1\/virtsync: .*ECONNREFUSED/);
    assert.doesNotMatch(result.stderr, /sekret/);
  });

  test('the broker', async () => {
    const result = await runCli(['sync', '--force', 'h1'], { ...env, AMQP_URL: 'amqp://guest:sekret@127.0.0.1:1/' });
    assert.equal(result.code, 3);
    assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
    assert.match(result.stderr, /^virtsync sync: cannot reach the broker at 127\.0\.0\.1:1\/: .*ECONNREFUSED/);
    assert.doesNotMatch(result.stderr, /sekret/);
  });
});
