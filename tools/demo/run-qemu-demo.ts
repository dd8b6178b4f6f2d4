/**
 * The demo on real guests (`npm run demo:qemu`): two QEMU compute hosts on this machine
 * (tools/qemu), a few TCG guests on each with their rows, every service a separate process
 * (an agent per host with lifecycle events on, ticks every cycle), then changes behind the
 * cloud's back (destroy, suspend, a killed QEMU, a managed save) and one live migration the
 * Nova way. It waits until every change is committed and audited and the rows equal the
 * hypervisors, and reports in the demo's summary. Everything it started is removed.
 */
import type { Kysely } from 'kysely';
import { countUnpublished } from '../../shared/db/change-outbox.ts';
import type { Database } from '../../shared/db/database.ts';
import type { SyncRule, UpdateRule } from '../../shared/sync-rules.ts';
import { bootInstance, compareWithHypervisors, migrateNovaWay, type QemuInstance } from '../qemu/qemu-cloud.ts';
import { type QemuHosts, startQemuHosts } from '../qemu/qemu-hosts.ts';
import { waitFor } from '../wait-for.ts';
import { watchBus } from './bus-watch.ts';
import { concludeDemo, type DemoSummary } from './demo-summary.ts';
import { type ServiceProcess, startServiceProcess } from './service-process.ts';

export const QEMU_DEMO_HOSTS = ['qemu-h1', 'qemu-h2'] as const;

export interface QemuDemoOptions {
  databaseUrl: string;
  amqpUrl: string;
  /** Guests per host; the out-of-band changes need 3. */
  guestsPerHost: number;
  logDir: string;
  cycleMs: number;
  timeoutMs: number;
  progress: (line: string) => void;
}

/**
 * What happens behind the cloud's back, and the rule the seed prescribes for each; `orRules`,
 * the other sequence the seed's rules give when the agent's look lands in a transient state
 * libvirt really reports (test/hypervisor/out-of-band.test.ts says when).
 */
const CHANGES: ReadonlyArray<{
  host: number;
  guest: number;
  what: string;
  rule: UpdateRule;
  orRules?: readonly UpdateRule[];
  act: (hosts: QemuHosts, i: QemuInstance) => Promise<unknown>;
}> = [
  // On a loaded machine the event path can read the SHUTDOWN libvirt passes through first.
  { host: 0, guest: 0, what: 'virsh destroy', rule: 'stopped', orRules: ['stopped', 'power-only'], act: (hosts, i) => hosts.virsh(i.host, 'destroy', i.name) },
  { host: 0, guest: 1, what: 'virsh suspend', rule: 'power-only', act: (hosts, i) => hosts.virsh(i.host, 'suspend', i.name) },
  { host: 1, guest: 0, what: 'kill -9 of its QEMU', rule: 'stopped', act: async (hosts, i) => process.kill(await hosts.qemuPid(i.host, i.name), 'SIGKILL') },
  // Not a guest panic: QEMU pauses a panicked guest before libvirt marks it crashed, and an
  // observation in between rightly commits PAUSED first (the lane's out-of-band test covers it).
  { host: 1, guest: 1, what: 'virsh managedsave', rule: 'stopped', act: (hosts, i) => hosts.virsh(i.host, 'managedsave', i.name) },
];

export async function runQemuDemo(db: Kysely<Database>, options: QemuDemoOptions): Promise<DemoSummary> {
  const started = Date.now();
  const { progress } = options;
  if (options.guestsPerHost < 3) throw new Error('the QEMU demo needs at least 3 guests per host');
  const hosts = await startQemuHosts({ hosts: QEMU_DEMO_HOSTS });
  const services: ServiceProcess[] = [];
  const watch = await watchBus(options.amqpUrl);
  try {
    progress(`started libvirtd for ${QEMU_DEMO_HOSTS.join(', ')} (own mount namespaces, sockets under ${hosts.dir})`);
    await db.insertInto('compute_hosts').values(QEMU_DEMO_HOSTS.map((host) => ({ host }))).execute();
    const guests = await Promise.all(
      QEMU_DEMO_HOSTS.map((host) => Promise.all(Array.from({ length: options.guestsPerHost }, (_, n) => bootInstance(db, hosts, host, `demo-${host}-${n + 1}`)))),
    );
    const instances = guests.flat();
    progress(`booted ${instances.length} TCG guests (32 MiB, no disk), ${options.guestsPerHost} per host, and their rows`);
    const generatedAt = Date.now();

    const baseEnv = { DATABASE_URL: options.databaseUrl, AMQP_URL: options.amqpUrl, LOG_LEVEL: 'info' };
    const start = (service: Parameters<typeof startServiceProcess>[0]['service'], env: Record<string, string>, instance?: string): void => {
      services.push(startServiceProcess({ service, instance, env: { ...baseEnv, ...env }, logDir: options.logDir }));
    };
    start('audit-subscriber', {});
    start('state-writer', {});
    QEMU_DEMO_HOSTS.forEach((host, n) => start('sync-agent', { AGENT_HOSTS: host, LIBVIRT_URI: hosts.uriTemplate, AGENT_LIFECYCLE_EVENTS: 'true' }, String(n + 1)));
    start('tick-producer', { TICK_INTERVAL_MS: String(options.cycleMs) });
    progress(`started audit-subscriber, state-writer, a sync-agent per host (lifecycle events on), tick-producer (every ${options.cycleMs} ms)`);
    const syncedBoth = () => QEMU_DEMO_HOSTS.every((host) => watch.reports.some((r) => r.host === host && r.outcome === 'synced'));
    await waitFor('a first sync of both hosts', syncedBoth, { timeoutMs: options.timeoutMs });
    const cycleDoneAt = Date.now();

    const changed = CHANGES.map((change) => {
      const instance = guests[change.host]?.[change.guest];
      if (instance === undefined) throw new Error('no guest for a change');
      return { ...change, instance };
    });
    for (const change of changed) {
      await change.act(hosts, change.instance);
      progress(`  behind the cloud's back on ${change.instance.host}: ${change.what} of ${change.instance.name}`);
    }
    const migrating = guests[0]?.[2];
    if (migrating === undefined) throw new Error('no guest to migrate');
    const outcome = await migrateNovaWay(db, hosts, migrating, QEMU_DEMO_HOSTS[1]);
    if (outcome !== 'migrated') throw new Error(`live migration failed: ${outcome.message}`);
    progress(`  live migration of ${migrating.name} to ${migrating.host}, the Nova way (task_state migrating throughout)`);

    const outboxCount = async () => Number((await db.selectFrom('change_outbox').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);
    const auditCount = async () => Number((await db.selectFrom('audit_log').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);
    await waitFor(
      'every change committed, published and audited, the rows equal to the hypervisors',
      async () => {
        const committed = await outboxCount();
        if (committed < CHANGES.length || (await countUnpublished(db)) > 0) return false;
        if ((await auditCount()) !== committed || watch.changes.length < committed) return false;
        return (await compareWithHypervisors(db, hosts)).length === 0;
      },
      { timeoutMs: options.timeoutMs, intervalMs: 200 },
    ).catch(() => progress('  (timed out waiting; the summary says what differs)'));
    const committedAt = Date.now();
    const [rowsCommitted, auditRows, mismatches] = [await outboxCount(), await auditCount(), await compareWithHypervisors(db, hosts)];

    const serviceExitCodes: Record<string, number | null> = {};
    for (const service of services.splice(0)) serviceExitCodes[service.name] = await service.stop();

    const reports = watch.reports.filter((r) => r.outcome === 'synced');
    const found = new Map<SyncRule, number>();
    for (const change of watch.changes) found.set(change.rule, (found.get(change.rule) ?? 0) + 1);
    const expected = new Map<SyncRule, number>();
    for (const change of changed) {
      const seen = watch.changes.filter((event) => event.instanceUuid === change.instance.uuid).map((event) => event.rule);
      const planned = change.orRules !== undefined && seen.join() === change.orRules.join() ? change.orRules : [change.rule];
      if (planned === change.orRules) progress(`  ${change.instance.name}: the agent looked while libvirt passed through a transient state (${seen.join(', then ')})`);
      for (const rule of planned) expected.set(rule, (expected.get(rule) ?? 0) + 1);
    }
    const rules = [...new Set([...expected.keys(), ...found.keys()])].map((rule) => ({ rule, expected: expected.get(rule) ?? 0, found: found.get(rule) ?? 0 }));
    return concludeDemo(
      {
      hosts: QEMU_DEMO_HOSTS.length,
      instances: instances.length,
      compared: reports.reduce((sum, r) => sum + r.compared, 0),
      hostsWithCountMismatch: new Set(reports.filter((r) => r.dbCount !== r.hypervisorCount).map((r) => r.host)).size,
      unknownDomains: reports.reduce((sum, r) => sum + r.unknown, 0),
      observationsPublished: reports.reduce((sum, r) => sum + r.published, 0),
      rules,
      rowsCommitted,
      eventsReceivedDownstream: watch.changes.length,
      auditRows,
      mismatches: mismatches.map((m) => ({ uuid: m.uuid, scenario: 'qemu', expected: m.expected, actual: m.actual })),
      serviceExitCodes,
      timingsMs: { generate: generatedAt - started, cycle: cycleDoneAt - generatedAt, commit: committedAt - cycleDoneAt, total: Date.now() - started },
      },
      watch.invalid.length,
    );
  } finally {
    await Promise.all(services.map((service) => service.stop()));
    await watch.close();
    await hosts.stop();
    progress(`stopped the services, destroyed the guests, stopped both libvirtd`);
  }
}
