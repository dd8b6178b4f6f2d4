/**
 * The hypervisor lane's rig: two QEMU compute hosts (qemu-h1, qemu-h2: namespaced libvirtd,
 * TCG guests), a database and a RabbitMQ vhost of its own, and the real services as
 * separate processes (agents over the hosts' qemu+unix URIs, writer, audit subscriber,
 * optionally the tick producer), plus a recorder on the bus. dispose() removes all of it;
 * the QEMU hosts also go when the test process exits or is signalled first.
 *
 * VIRTSYNC_LANE_KEEP_LOGS=1 keeps the services' logs and each host's libvirtd log (copied out
 * before the hosts go) in the lane's log directory, and prints where: what a rare failure needs.
 */
import { randomUUID } from 'node:crypto';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Kysely } from 'kysely';
import { declareTickQueue, Exchange } from '../../shared/bus/topology.ts';
import { countUnpublished } from '../../shared/db/change-outbox.ts';
import type { Database } from '../../shared/db/database.ts';
import { type ChangeEvent, changeEventSchema } from '../../shared/messages/change-event.ts';
import type { HostReport } from '../../shared/messages/host-report.ts';
import { encodeMessage } from '../../shared/messages/codec.ts';
import { SCHEMA_VERSION } from '../../shared/messages/fields.ts';
import { parseMessage } from '../../shared/messages/codec.ts';
import { type Tick, tickSchema } from '../../shared/messages/tick.ts';
import { type UnknownDomain, unknownDomainSchema } from '../../shared/messages/unknown-domain.ts';
import { type ServiceProcess, startServiceProcess } from '../../tools/demo/service-process.ts';
import { bootInstance, compareWithHypervisors, type HypervisorMismatch, type QemuInstance } from '../../tools/qemu/qemu-cloud.ts';
import { type QemuHosts, startQemuHosts } from '../../tools/qemu/qemu-hosts.ts';
import { waitFor } from '../../tools/wait-for.ts';
import { type BusRecorder, recordBus } from '../faults/harness/bus-recorder.ts';
import { type BusProbe, openBusProbe } from '../helpers/bus-probe.ts';
import { observationsQueued } from '../helpers/observations.ts';
import { createTestDatabase } from '../helpers/test-database.ts';
import { createTestVhost } from '../../tools/local-env/vhost.ts';

export const H1 = 'qemu-h1';
export const H2 = 'qemu-h2';

export interface AgentOptions {
  hosts: readonly string[];
  /** Lifecycle events on (the event path); off leaves ticks as the only way to look. */
  events: boolean;
  env?: Record<string, string>;
}

export interface QemuLane {
  db: Kysely<Database>;
  hosts: QemuHosts;
  recorder: BusRecorder;
  logDir: string;
  /** Unknown-domain reports the agents published. */
  unknownDomains: UnknownDomain[];
  /** Observations the writer decided to leave alone (its notable skips: moved, migrating-in, in-transition, ...). */
  writerSkips: Array<{ instanceUuid: string; rule: string; observingHost: string }>;
  boot(host: string, name: string, options?: { failingDisk?: boolean }): Promise<QemuInstance>;
  /** Resolves once a host's agent acts on lifecycle events: it reported a canary domain defined for the purpose. */
  waitForAgentWatching(host: string): Promise<void>;
  startAgent(options: AgentOptions): ServiceProcess;
  /** The writer and the audit subscriber. */
  startPipeline(): void;
  /** Periodic ticks for every compute host. */
  startTickProducer(intervalMs: number): ServiceProcess;
  /**
   * One manual tick per host, published directly; resolves once the agents reported on each
   * (unless told not to wait). With the tick producer running, a newer tick can supersede
   * this one in the host's one-tick queue (`x-max-length` 1, `drop-head`): the report of a
   * tick whose sync started after this one was published stands for it.
   */
  tick(hosts: readonly string[], options?: { wait?: boolean }): Promise<void>;
  row(uuid: string): Promise<{ host: string; powerState: number; vmState: string; taskState: string | null }>;
  waitForRow(uuid: string, what: string, holds: (row: Awaited<ReturnType<QemuLane['row']>>) => boolean, timeoutMs?: number): Promise<void>;
  /** Committed changes, from the outbox, in commit order. */
  changes(): Promise<ChangeEvent[]>;
  /** Waits until every queued observation is decided and every committed change published and audited. */
  settle(timeoutMs?: number): Promise<void>;
  /** Rows against hypervisors, and the audit log against committed changes: empty when both hold. */
  endProblems(): Promise<string[]>;
  dispose(): Promise<void>;
}

export async function createQemuLane(options: { name: string; hosts?: readonly string[] }): Promise<QemuLane> {
  const hostNames = options.hosts ?? [H1, H2];
  const logDir = await mkdtemp(path.join(os.tmpdir(), `virtsync-lane-${options.name}-`));
  const keepLogs = process.env.VIRTSYNC_LANE_KEEP_LOGS === '1';
  const cleanups: Array<() => Promise<unknown>> = [
    async () => {
      if (!keepLogs) return rm(logDir, { recursive: true, force: true });
      process.stderr.write(`lane ${options.name}: logs kept in ${logDir}\n`);
    },
  ];
  const dispose = async (): Promise<void> => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  };
  try {
    // Independent and slow-ish: all three at once, each one's cleanup registered as it is up.
    const track = <T>(start: Promise<T>, cleanup: (value: T) => Promise<unknown>): Promise<T> =>
      start.then((value) => {
        cleanups.push(() => cleanup(value));
        return value;
      });
    const starts = [
      track(createTestDatabase(), (database) => database.drop()),
      track(createTestVhost(), (vhost) => vhost.delete()),
      track(startQemuHosts({ hosts: hostNames }), async (hosts) => {
        if (keepLogs) for (const host of hostNames) await cp(path.join(hosts.dir, host, 'libvirtd.log'), path.join(logDir, `libvirtd-${host}.log`)).catch(() => undefined);
        await hosts.stop();
      }),
    ] as const;
    await Promise.allSettled(starts);
    const [database, vhost, hosts] = await Promise.all(starts);
    const probe: BusProbe = await openBusProbe(vhost.amqpUrl);
    cleanups.push(() => probe.close());
    for (const host of hostNames) await declareTickQueue(probe.channel, host);
    const recorder = await recordBus(vhost.amqpUrl, hostNames);
    cleanups.push(() => recorder.close());
    await database.db.insertInto('compute_hosts').values(hostNames.map((host) => ({ host }))).execute();
    const unknownDomains: UnknownDomain[] = [];
    const { queue } = await probe.channel.assertQueue('', { exclusive: true, autoDelete: true });
    await probe.channel.bindQueue(queue, Exchange.reports, 'unknown.#');
    await probe.channel.consume(
      queue,
      (message) => {
        const parsed = message === null ? undefined : parseMessage(unknownDomainSchema, message.content);
        if (parsed?.ok === true) unknownDomains.push(parsed.value);
      },
      { noAck: true },
    );
    return buildLane({ db: database.db, hosts, probe, recorder, unknownDomains, logDir, amqpUrl: vhost.amqpUrl, databaseUrl: database.url, cleanups, dispose });
  } catch (err) {
    await dispose();
    throw err;
  }
}

function buildLane(deps: {
  db: Kysely<Database>;
  hosts: QemuHosts;
  probe: BusProbe;
  recorder: BusRecorder;
  unknownDomains: UnknownDomain[];
  logDir: string;
  amqpUrl: string;
  databaseUrl: string;
  cleanups: Array<() => Promise<unknown>>;
  dispose: () => Promise<void>;
}): QemuLane {
  const { db, hosts, probe, recorder } = deps;
  const baseEnv = { DATABASE_URL: deps.databaseUrl, AMQP_URL: deps.amqpUrl, LOG_LEVEL: 'info', BREAKER_RESET_MS: '2000' };
  const processes: ServiceProcess[] = [];
  let agents = 0;
  let canaries = 0;
  const writerSkips: QemuLane['writerSkips'] = [];
  const onWriterLog = (entry: Record<string, unknown>): void => {
    const { msg, instanceUuid, rule, observingHost } = entry;
    if (msg === 'observation left the row unchanged' && typeof instanceUuid === 'string' && typeof rule === 'string' && typeof observingHost === 'string') {
      writerSkips.push({ instanceUuid, rule, observingHost });
    }
  };
  const start = (
    service: Parameters<typeof startServiceProcess>[0]['service'],
    env: Record<string, string>,
    instance?: string,
    onLogLine?: (entry: Record<string, unknown>) => void,
  ): ServiceProcess => {
    const child = startServiceProcess({ service, instance, env: { ...baseEnv, ...env }, logDir: deps.logDir, onLogLine });
    processes.push(child);
    return child;
  };
  // Services first (pipeline order), so nothing is left consuming from a deleted vhost.
  deps.cleanups.push(async () => {
    for (const service of ['tick-producer', 'sync-agent', 'state-writer', 'audit-subscriber']) {
      await Promise.all(processes.filter((p) => p.name.startsWith(service)).map((p) => p.stop()));
    }
  });
  const count = async (table: 'change_outbox' | 'audit_log'): Promise<number> =>
    Number((await db.selectFrom(table).select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);

  const lane: QemuLane = {
    db,
    hosts,
    recorder,
    logDir: deps.logDir,
    unknownDomains: deps.unknownDomains,
    writerSkips,
    boot: (host, name, options) => bootInstance(db, hosts, host, name, options),
    async waitForAgentWatching(host) {
      // A canary defined before the watcher connected goes unseen: define another until one is reported.
      const deadline = Date.now() + 60_000;
      for (;;) {
        const name = `${host}-canary-${++canaries}`;
        const uuid = await hosts.defineGuest(host, { name, start: false });
        const seen = await waitFor(`${host}'s agent to report ${name}`, () => deps.unknownDomains.some((u) => u.instanceUuid === uuid), { timeoutMs: 3_000 }).then(
          () => true,
          (err: unknown) => (Date.now() < deadline ? false : Promise.reject(err)),
        );
        await hosts.virsh(host, 'undefine', name);
        if (seen) return;
      }
    },
    startAgent({ hosts: served, events, env = {} }) {
      agents++;
      return start(
        'sync-agent',
        { AGENT_HOSTS: served.join(','), LIBVIRT_URI: hosts.uriTemplate, AGENT_LIFECYCLE_EVENTS: String(events), ...env },
        String(agents),
      );
    },
    startPipeline() {
      start('audit-subscriber', {});
      start('state-writer', {}, undefined, onWriterLog);
    },
    startTickProducer: (intervalMs) => start('tick-producer', { TICK_INTERVAL_MS: String(intervalMs), TICK_MAX_CYCLES: '0' }),
    async tick(served, { wait = true } = {}) {
      const publishedAt = Date.now();
      const ticks = served.map((host) => {
        const tick: Tick = { schemaVersion: SCHEMA_VERSION, tickId: randomUUID(), host, cycle: 0, scheduledAt: new Date(publishedAt).toISOString(), trigger: 'manual' };
        probe.channel.publish(Exchange.ticks, host, encodeMessage(tickSchema, tick), { persistent: true, messageId: tick.tickId, type: 'tick' });
        return tick;
      });
      if (!wait) return;
      const answers = (tick: Tick) => (report: HostReport) =>
        report.tickId === tick.tickId || (report.host === tick.host && report.tickId !== null && Date.parse(report.startedAt) >= publishedAt);
      await waitFor('a report on each manual tick (or on a tick that superseded it)', () => ticks.every((tick) => recorder.reports.some(answers(tick))), {
        timeoutMs: 30_000,
      });
    },
    async row(uuid) {
      const row = await db.selectFrom('instances').select(['host', 'power_state', 'vm_state', 'task_state']).where('uuid', '=', uuid).executeTakeFirstOrThrow();
      return { host: row.host, powerState: row.power_state, vmState: row.vm_state, taskState: row.task_state };
    },
    async waitForRow(uuid, what, holds, timeoutMs = 30_000) {
      await waitFor(what, async () => holds(await lane.row(uuid)), { timeoutMs, intervalMs: 100 });
    },
    async changes() {
      const rows = await db.selectFrom('change_outbox').select('payload').orderBy('seq').execute();
      return rows.map((row) => changeEventSchema.parse(row.payload));
    },
    async settle(timeoutMs = 30_000) {
      await waitFor(
        'observations decided, changes published and audited',
        async () => {
          if ((await observationsQueued(probe)) > 0) return false;
          if ((await countUnpublished(db)) > 0) return false;
          return (await count('audit_log')) === (await count('change_outbox'));
        },
        { timeoutMs, intervalMs: 100 },
      );
    },
    async endProblems() {
      const problems = (await compareWithHypervisors(db, hosts)).map((m: HypervisorMismatch) => `instance ${m.uuid}: row says ${m.expected}, hypervisors say ${m.actual}`);
      const outbox = new Set((await db.selectFrom('change_outbox').select('event_id').execute()).map((row) => row.event_id));
      const audit = (await db.selectFrom('audit_log').select('event_id').execute()).map((row) => row.event_id);
      if (new Set(audit).size !== audit.length) problems.push('the audit log holds a change twice');
      const missing = [...outbox].filter((id) => !audit.includes(id));
      const extra = audit.filter((id) => !outbox.has(id));
      if (missing.length > 0) problems.push(`${missing.length} committed changes not in the audit log`);
      if (extra.length > 0) problems.push(`${extra.length} audit rows match no committed change`);
      return problems;
    },
    dispose: deps.dispose,
  };
  return lane;
}
