/**
 * The day-two commands against a real agent: `sync --wait` prints each host's outcome and
 * fails for a host nobody serves (with a warning that no agent consumes its queue);
 * `unknown` lists the domains no row places (and refuses at once when no agent could answer);
 * `hosts list|enable|disable` change
 * compute_hosts; and a broker or database that refuses us says so (exit 4).
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { z } from 'zod';
import { PowerState } from '../../../shared/power-state.ts';
import { VmState } from '../../../shared/vm-state.ts';
import { type ServiceProcess, startServiceProcess } from '../../../tools/demo/service-process.ts';
import { waitFor } from '../../../tools/wait-for.ts';
import { runCli } from '../../helpers/cli-process.ts';
import { createLibvirtHosts, type LibvirtHosts } from '../../helpers/libvirt-host.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/test-database.ts';
import { createTestVhost, type TestVhost } from '../../../tools/local-env/vhost.ts';

const host = `d2-${randomBytes(3).toString('hex')}`;
const idle = `${host}-idle`;
const inSync = randomUUID();
const drifted = randomUUID();
const unknown = randomUUID();
let database: TestDatabase;
let vhost: TestVhost;
let libvirt: LibvirtHosts;
let logDir: string;
let agent: ServiceProcess;
let env: Record<string, string>;

before(async () => {
  database = await createTestDatabase();
  vhost = await createTestVhost();
  libvirt = await createLibvirtHosts();
  logDir = await mkdtemp(path.join(os.tmpdir(), 'virtsync-cli-d2-'));
  env = { DATABASE_URL: database.url, AMQP_URL: vhost.amqpUrl };
  await database.db.insertInto('compute_hosts').values([{ host }, { host: idle }]).execute();
  await database.db
    .insertInto('instances')
    .values([inSync, drifted].map((uuid) => ({ uuid, host, power_state: PowerState.RUNNING, vm_state: VmState.ACTIVE })))
    .execute();
  await libvirt.write(host, [
    { uuid: inSync, state: PowerState.RUNNING },
    { uuid: drifted, state: PowerState.SHUTOFF },
    { uuid: unknown, state: PowerState.PAUSED },
  ]);
  let ready = false;
  agent = startServiceProcess({
    service: 'sync-agent',
    env: { ...env, AGENT_HOSTS: host, LIBVIRT_URI: libvirt.uriTemplate, AGENT_LIFECYCLE_EVENTS: 'false' },
    logDir,
    onLogLine: (entry) => {
      if (entry.msg === 'consuming ticks') ready = true;
    },
  });
  await waitFor('the agent consuming', () => ready, { timeoutMs: 30_000 });
});

after(async () => {
  await agent?.stop();
  await vhost?.delete();
  await database?.drop();
  await libvirt?.remove();
  if (logDir !== undefined) await rm(logDir, { recursive: true, force: true });
});

describe('sync --wait', () => {
  test("prints the host's outcome once its agent reports", async () => {
    const result = await runCli(['sync', host, '--wait'], env);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`^${host} +synced +2 +1 +0 +1 +\\d+ ms`, 'm'));
    assert.doesNotMatch(result.stderr, /no agent consumes/);
  });

  test('--json gives each outcome with its report', async () => {
    const result = await runCli(['sync', host, '--wait', '--json'], env);
    assert.equal(result.code, 0, result.stderr);
    const [outcome] = z.array(z.object({ host: z.string(), outcome: z.string(), report: z.object({ compared: z.number(), unknown: z.number() }) })).parse(JSON.parse(result.stdout));
    assert.deepEqual([outcome?.host, outcome?.outcome, outcome?.report.compared, outcome?.report.unknown], [host, 'synced', 2, 1]);
  });

  test('a host no agent serves: a warning, then timed out and exit 1', async () => {
    const result = await runCli(['sync', host, idle, '--wait', '--timeout', '3'], env);
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, new RegExp(`warning: no agent consumes virtsync\\.tick\\.${idle}`));
    assert.match(result.stdout, new RegExp(`^${host} +synced`, 'm'));
    assert.match(result.stdout, new RegExp(`^${idle} +timed-out`, 'm'));
    assert.match(result.stderr, new RegExp(`1 of 2 hosts did not sync: ${idle} \\(timed-out\\)`));
  });
});

describe('unknown', () => {
  test('lists the domain no row places, with its state', async () => {
    const result = await runCli(['unknown', '--host', host], env);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`^${host} +${unknown} +paused `, 'm'));
    assert.doesNotMatch(result.stdout, new RegExp(`${inSync}|${drifted}`));
  });

  test('no agent for any of the hosts: exit 1 at once, nothing published', async () => {
    const started = Date.now();
    const result = await runCli(['unknown', '--host', idle], env);
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, new RegExp(`no agent consumes the tick queue of ${idle}: nothing would report`));
    assert.ok(Date.now() - started < 30_000, 'did not wait for the reports');
  });

  test('--json gives the unknown-domain messages', async () => {
    const result = await runCli(['unknown', '--host', host, '--json'], env);
    assert.equal(result.code, 0, result.stderr);
    const domains = z.array(z.object({ host: z.string(), instanceUuid: z.string() })).parse(JSON.parse(result.stdout));
    assert.deepEqual(domains.map((d) => [d.host, d.instanceUuid]), [[host, unknown]]);
  });
});

describe('hosts', () => {
  const listed = async (): Promise<Record<string, boolean>> => {
    const result = await runCli(['hosts', 'list', '--json'], env);
    assert.equal(result.code, 0, result.stderr);
    return Object.fromEntries(z.array(z.object({ host: z.string(), enabled: z.boolean() })).parse(JSON.parse(result.stdout)).map((h) => [h.host, h.enabled]));
  };

  test('disable and enable change compute_hosts; list shows it', async () => {
    assert.deepEqual(await listed(), { [host]: true, [idle]: true });
    const disabled = await runCli(['hosts', 'disable', idle], env);
    assert.equal(disabled.code, 0, disabled.stderr);
    assert.equal(disabled.stdout.trim(), `${idle} disabled`);
    assert.deepEqual(await listed(), { [host]: true, [idle]: false });
    const enabled = await runCli(['hosts', 'enable', idle], env);
    assert.equal(enabled.code, 0, enabled.stderr);
    assert.deepEqual(await listed(), { [host]: true, [idle]: true });
  });

  test('a host not in compute_hosts: exit 1 naming it, the others still changed', async () => {
    const result = await runCli(['hosts', 'disable', idle, 'ghost-host'], env);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^virtsync hosts disable: not in compute_hosts: ghost-host$/m);
    assert.deepEqual(await listed(), { [host]: true, [idle]: false });
    await runCli(['hosts', 'enable', idle], env);
  });

  test('list prints one row per host (no report recorded yet: no audit subscriber runs here)', async () => {
    const result = await runCli(['hosts', 'list'], env);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^HOST +ENABLED +LAST SYNC +OUTCOME/);
    assert.match(result.stdout, new RegExp(`^${idle} +yes +never +-`, 'm'));
  });
});

describe('refusals say what was refused (exit 4), a wrong scheme is configuration (exit 2)', () => {
  const cases: Array<[string, string[], Record<string, string>, number, RegExp]> = [
    ['a vhost that does not exist', ['sync', '--force', 'h1'], { AMQP_URL: 'amqp://guest:guest@127.0.0.1:5672/no-such-vhost' }, 4, /refused the connection: vhost "no-such-vhost" refused: it does not exist, or user guest has no permission/],
    ['a wrong broker password', ['sync', '--force', 'h1'], { AMQP_URL: 'amqp://guest:wrong@127.0.0.1:5672/' }, 4, /refused the connection: login refused for user guest/],
    ['a database role that does not exist', ['status'], { DATABASE_URL: 'postgres://no_such_role@127.0.0.1:5432/postgres' }, 4, /refused the connection: role "no_such_role" does not exist \(check the user in DATABASE_URL\)/],
    ['an http:// AMQP_URL', ['sync', '--force', 'h1'], { AMQP_URL: 'http://127.0.0.1:15672/' }, 2, /AMQP_URL: must start with amqp:\/\/ or amqps:\/\//],
  ];
  for (const [name, args, overrides, code, message] of cases) {
    test(name, async () => {
      const result = await runCli(args, { ...env, ...overrides });
      assert.equal(result.code, code, result.stderr);
      assert.match(result.stderr, message);
      assert.doesNotMatch(result.stderr, /wrong|\n\s+at /, 'no password, no stack trace');
    });
  }
});
