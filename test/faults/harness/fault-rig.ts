/**
 * The fault suite's rig: a simulated fleet with drift on a database and a RabbitMQ vhost
 * of its own, every service a separate process started the way an operator would (its
 * own main.ts, configured by environment), a recorder on the bus, and the means to settle
 * the system after a fault and measure it. A test starts the services it needs, injects
 * its fault at a moment it polls for, then calls settle() and finish().
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ConsumeMessage } from 'amqplib';
import { declareTickQueue, Exchange } from '../../../shared/bus/topology.ts';
import { countUnpublished } from '../../../shared/db/change-outbox.ts';
import { encodeMessage } from '../../../shared/messages/codec.ts';
import { SCHEMA_VERSION } from '../../../shared/messages/fields.ts';
import { MAX_OBSERVATIONS_PER_MESSAGE } from '../../../shared/messages/observation.ts';
import { type Tick, tickSchema } from '../../../shared/messages/tick.ts';
import { type ServiceName, type ServiceProcess, startServiceProcess } from '../../../tools/demo/service-process.ts';
import { DEFAULT_FLEET, type FleetOptions, type FleetPlan, planFleet } from '../../../tools/fleet/fleet-plan.ts';
import { verifyFleet } from '../../../tools/fleet/verify-fleet.ts';
import { applyRaces, fleetLibvirtUri, insertFleetRows, writeNodeXmlFiles } from '../../../tools/fleet/write-fleet.ts';
import { waitFor } from '../../../tools/wait-for.ts';
import { type BusProbe, openBusProbe } from '../../helpers/bus-probe.ts';
import { observationsQueued } from '../../helpers/observations.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/test-database.ts';
import { createTestVhost, type TestVhost } from '../../../tools/local-env/vhost.ts';
import { type BusRecorder, recordBus } from './bus-recorder.ts';
import { type FaultOutcome, measureOutcome } from './fault-outcome.ts';
import { countLogLine, emptyStats, type ServiceStats, sumStats } from './service-stats.ts';

export type { FaultOutcome } from './fault-outcome.ts';

export interface FaultRigOptions {
  /** The fault's name, as printed in its FAULT line. */
  fault: string;
  fleet?: Partial<Pick<FleetOptions, 'hosts' | 'minVmsPerHost' | 'maxVmsPerHost' | 'driftRatio' | 'seed'>>;
  /** A fleet the test built itself (e.g. domains on the shared libvirtd), instead of a planned one; its rows are inserted as planned. */
  plan?: FleetPlan;
  /** Agent processes the hosts are dealt over. */
  agents?: number;
  /**
   * When the cloud's own changes (migrations finishing, deletions) happen: before any
   * service runs ('at-start'), or when the test calls applyRaces() ('manual': between the
   * agents' reads and the writer's start, as the demo does).
   */
  races?: 'at-start' | 'manual';
  /** Hosts the agents also serve that are never ticked (their tick queues exist, their libvirt does not). */
  extraAgentHosts?: readonly string[];
  /**
   * Restart a process that exits non-zero without being asked to (what systemd's
   * Restart=on-failure does), so a crash shows up as a crash but the rest of the run can
   * still show whether anything was lost. The crashed process still counts as crashed.
   */
  restartOnCrash?: boolean;
  /**
   * Engines the test started itself (tools/local-env/engines), to restart or kill at will:
   * the test database is created on `databaseServerUrl`, and `vhost` (made with
   * createEngineVhost) replaces one on the machine's shared broker. The rig deletes both.
   */
  engines?: { databaseServerUrl?: string; vhost?: TestVhost };
}

export interface RigProcess {
  name: string;
  service: ServiceName;
  process: ServiceProcess;
  stats: ServiceStats;
  /** The test killed it on purpose. */
  killed: boolean;
  /** Set once it has exited, with whether the rig had asked it to stop. */
  exit?: { code: number | null; requested: boolean };
  /** SIGTERM (a graceful stop); resolves with the exit code. */
  stop(): Promise<number | null>;
}

export interface FaultRig {
  fault: string;
  plan: FleetPlan;
  database: TestDatabase;
  databaseName: string;
  vhost: TestVhost;
  probe: BusProbe;
  recorder: BusRecorder;
  logDir: string;
  /** The node XML files of the simulated hosts (`<host>.xml`). */
  fleetDir: string;
  agentHosts: string[][];
  processes: RigProcess[];
  /**
   * Messages the test put on the bus itself: distinct valid observations the writer must
   * decide, second copies of observations already counted (the writer must decide and
   * absorb them), malformed messages that must be dead-lettered, and anything else
   * (e.g. duplicated change events).
   */
  injected: { observations: number; duplicates: number; malformed: number; other: number };
  startAuditSubscriber(env?: Record<string, string>): RigProcess;
  startAgent(index: number, env?: Record<string, string>, onLogLine?: LogListener): RigProcess;
  /** `onLogLine` sees each JSON log line as it is written: a test can act at an exact moment (e.g. kill on "batch committed"). */
  startWriter(env?: Record<string, string>, onLogLine?: LogListener): RigProcess;
  startTickProducer(options: { intervalMs: number; cycles: number; env?: Record<string, string> }): RigProcess;
  kill(process: RigProcess, signal?: NodeJS.Signals): Promise<void>;
  applyRaces(): Promise<void>;
  /**
   * One full cycle with no writer running: the audit subscriber, the agents and one tick
   * cycle, until every host has reported; then its observations wait in the writer's queue.
   */
  runCycleWithoutWriter(): Promise<void>;
  /** Publishes a manual tick per host; returns their ids. */
  publishManualTicks(hosts: readonly string[]): Promise<string[]>;
  /** Waits for `count` messages of a queue and takes them (acked); consuming, since basic.get on a quorum queue costs a round trip each. */
  takeMessages(queue: string, count: number, timeoutMs: number): Promise<ConsumeMessage[]>;
  /** Observations published by the agents, by their host reports. */
  observationsPublished(): number;
  /** The messages carrying them: a host's observations travel together. */
  observationMessagesPublished(): number;
  writerStats(): ServiceStats;
  count(table: 'change_outbox' | 'audit_log'): Promise<number>;
  /** Polls until everything observed is decided, published and audited, and the fleet is as expected (or the deadline passes). */
  settle(timeoutMs: number): Promise<{ settled: boolean; waitedMs: number }>;
  /** Stops every process (SIGTERM), checks the invariants, measures the figures. */
  finish(settled: { settled: boolean; waitedMs: number }): Promise<FaultOutcome>;
  dispose(keepLogs?: boolean): Promise<void>;
}

/** How long a test waits for freshly started service processes to connect or report: tsx compiles each one, slow on a busy machine. */
export const SERVICE_START_TIMEOUT_MS = 120_000;

export type LogListener = (entry: Record<string, unknown>, process: RigProcess) => void;

const DEFAULT_FAULT_FLEET = { hosts: 8, minVmsPerHost: 20, maxVmsPerHost: 40, driftRatio: 0.3, seed: 11 };

export async function createFaultRig(options: FaultRigOptions): Promise<FaultRig> {
  const database = await createTestDatabase(options.engines?.databaseServerUrl);
  const vhost = options.engines?.vhost ?? (await createTestVhost());
  const logDir = await mkdtemp(path.join(os.tmpdir(), `virtsync-fault-${options.fault}-`));
  const databaseName = new URL(database.url).pathname.slice(1);
  const prefix = `f${vhost.name.slice(-6)}`;
  const plan = options.plan ?? planFleet({ ...DEFAULT_FLEET, ...DEFAULT_FAULT_FLEET, ...options.fleet, hostPrefix: prefix });
  const fleetDir = path.join(logDir, 'fleet');
  await writeNodeXmlFiles(plan, fleetDir);
  await insertFleetRows(database.db, plan);
  if ((options.races ?? 'at-start') === 'at-start') await applyRaces(database.db, plan);

  const probe = await openBusProbe(vhost.amqpUrl);
  for (const host of [...plan.hosts, ...(options.extraAgentHosts ?? [])]) await declareTickQueue(probe.channel, host);
  const recorder = await recordBus(vhost.amqpUrl, plan.hosts);
  const baseEnv = { DATABASE_URL: database.url, AMQP_URL: vhost.amqpUrl, LOG_LEVEL: 'info', BREAKER_RESET_MS: '2000' };
  const agentCount = Math.min(options.agents ?? 2, plan.hosts.length);
  const agentHosts: string[][] = Array.from({ length: agentCount }, () => []);
  plan.hosts.forEach((host, index) => agentHosts[index % agentCount]?.push(host));
  for (const [index, extra] of (options.extraAgentHosts ?? []).entries()) agentHosts[index % agentCount]?.push(extra);

  const processes: RigProcess[] = [];
  const counters = new Map<ServiceName, number>();
  let restarts = 0;
  const start = (service: ServiceName, env: Record<string, string>, onLogLine?: LogListener): RigProcess => {
    const n = (counters.get(service) ?? 0) + 1;
    counters.set(service, n);
    const stats = emptyStats();
    const child = startServiceProcess({
      service,
      instance: String(n),
      env: { ...baseEnv, ...env },
      logDir,
      onLogLine: (entry) => {
        countLogLine(stats, entry);
        onLogLine?.(entry, started);
      },
    });
    let requested = false;
    const started: RigProcess = {
      name: child.name,
      service,
      process: child,
      stats,
      killed: false,
      stop() {
        requested = true;
        return child.stop();
      },
    };
    void child.exited.then((code) => {
      started.exit = { code, requested };
      if (options.restartOnCrash === true && !requested && !started.killed && code !== 0 && restarts < 10 && !finishing) {
        restarts++;
        start(service, env, onLogLine);
      }
    });
    processes.push(started);
    return started;
  };

  let finishing = false;
  const of = (service: ServiceName): RigProcess[] => processes.filter((p) => p.service === service);
  const count = async (table: 'change_outbox' | 'audit_log'): Promise<number> =>
    Number((await database.db.selectFrom(table).select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);
  const observationsPublished = (): number => recorder.reports.reduce((total, report) => total + report.published, 0);
  const observationMessagesPublished = (): number =>
    recorder.reports.reduce((total, report) => total + Math.ceil(report.published / MAX_OBSERVATIONS_PER_MESSAGE), 0);
  const writerStats = (): ServiceStats => sumStats(of('state-writer').map((p) => p.stats));
  const injected = { observations: 0, duplicates: 0, malformed: 0, other: 0 };

  /** Each ticked host's newest tick has been answered by a report: no agent has work left. */
  const agentsIdle = (): boolean => {
    const newest = new Map<string, string>();
    for (const tick of recorder.ticks) newest.set(tick.host, tick.tickId);
    const answered = new Set(recorder.reports.map((report) => report.tickId));
    return [...newest.values()].every((tickId) => answered.has(tickId));
  };

  const settledNow = async (): Promise<boolean> => {
    try {
      return await everythingSettled();
    } catch {
      // A dependency the test restarts may be down at this instant: not settled yet.
      return false;
    }
  };
  const everythingSettled = async (): Promise<boolean> => {
    if (of('tick-producer').some((p) => p.exit === undefined)) return false;
    if (!agentsIdle()) return false;
    if (writerStats().observations < observationsPublished() + injected.observations + injected.duplicates) return false;
    if ((await observationsQueued(probe)) > 0) return false;
    if ((await countUnpublished(database.db)) > 0) return false;
    const committed = await count('change_outbox');
    if ((await count('audit_log')) !== committed) return false;
    if (new Set(recorder.changes.map((c) => c.eventId)).size < committed) return false;
    return (await verifyFleet(database.db, plan)).length === 0;
  };

  const rig: FaultRig = {
    fault: options.fault,
    plan,
    database,
    databaseName,
    vhost,
    probe,
    recorder,
    logDir,
    fleetDir,
    agentHosts,
    processes,
    injected,
    startAuditSubscriber: (env = {}) => start('audit-subscriber', env),
    startAgent(index, env = {}, onLogLine) {
      const hosts = agentHosts[index];
      if (hosts === undefined) throw new Error(`no agent ${index}`);
      // test:///<file> connections are private to the agent: no lifecycle events to watch. Ticks are the only
      // trigger, so each fault's figures count one look per tick (agent-kill9-event-burst turns both on).
      return start(
        'sync-agent',
        { AGENT_HOSTS: hosts.join(','), LIBVIRT_URI: fleetLibvirtUri(fleetDir), AGENT_LIFECYCLE_EVENTS: 'false', AGENT_STARTUP_SYNC: 'false', ...env },
        onLogLine,
      );
    },
    startWriter: (env = {}, onLogLine) => start('state-writer', env, onLogLine),
    startTickProducer: ({ intervalMs, cycles, env = {} }) =>
      start('tick-producer', { TICK_INTERVAL_MS: String(intervalMs), TICK_MAX_CYCLES: String(cycles), ...env }),
    async kill(target, signal = 'SIGKILL') {
      target.killed = true;
      await target.process.kill(signal);
    },
    applyRaces: () => applyRaces(database.db, plan),
    async runCycleWithoutWriter() {
      rig.startAuditSubscriber();
      rig.agentHosts.forEach((_, index) => rig.startAgent(index));
      rig.startTickProducer({ intervalMs: 1_000, cycles: 1 });
      await waitFor('a host report from every host', () => new Set(recorder.reports.map((r) => r.host)).size >= plan.hosts.length, { timeoutMs: SERVICE_START_TIMEOUT_MS });
    },
    async publishManualTicks(hosts) {
      const channel = await probe.ready();
      const ids: string[] = [];
      for (const host of hosts) {
        const tick: Tick = { schemaVersion: SCHEMA_VERSION, tickId: randomUUID(), host, cycle: 0, scheduledAt: new Date().toISOString(), trigger: 'manual' };
        channel.publish(Exchange.ticks, host, encodeMessage(tickSchema, tick), { persistent: true, messageId: tick.tickId, type: 'tick' });
        ids.push(tick.tickId);
      }
      await waitFor('the manual ticks to be routed', () => ids.every((id) => recorder.ticks.some((t) => t.tickId === id)), { timeoutMs: 10_000 });
      return ids;
    },
    async takeMessages(queue, expected, timeoutMs) {
      const taken: ConsumeMessage[] = [];
      const channel = await probe.ready();
      const { consumerTag } = await channel.consume(queue, (message) => {
        if (message === null) return;
        channel.ack(message);
        taken.push(message);
      });
      try {
        await waitFor(`${expected} messages from ${queue}`, () => taken.length >= expected, { timeoutMs });
      } finally {
        await channel.cancel(consumerTag);
      }
      return taken;
    },
    observationsPublished,
    observationMessagesPublished,
    writerStats,
    count,
    async settle(timeoutMs) {
      const started = Date.now();
      try {
        await waitFor('the system to settle', settledNow, { timeoutMs, intervalMs: 200 });
        return { settled: true, waitedMs: Date.now() - started };
      } catch {
        // The invariants below say what did not settle.
        return { settled: false, waitedMs: Date.now() - started };
      }
    },
    async finish({ settled, waitedMs }) {
      finishing = true;
      // Stop in pipeline order: nothing new is observed, the writers commit and flush their outbox, then the audit drains.
      for (const service of ['tick-producer', 'sync-agent', 'state-writer'] as const) {
        await Promise.all(of(service).filter((p) => p.exit === undefined).map((p) => p.stop()));
      }
      const committed = await count('change_outbox');
      await waitFor('the audit log to catch up with the outbox', async () => (await count('audit_log')) >= committed, { timeoutMs: 15_000, intervalMs: 100 }).catch(
        () => undefined,
      );
      await Promise.all(of('audit-subscriber').filter((p) => p.exit === undefined).map((p) => p.stop()));
      // Let the exit handlers record the codes.
      await Promise.all(processes.map((p) => p.process.exited));
      await new Promise((resolve) => setImmediate(resolve));

      return measureOutcome({ fault: options.fault, plan, db: database.db, probe, recorder, processes, injected, logDir, settled, settleMs: waitedMs });
    },
    async dispose(keepLogs = false) {
      finishing = true;
      await Promise.all(processes.map((p) => p.process.kill('SIGKILL')));
      await recorder.close().catch(() => undefined);
      await probe.close().catch(() => undefined);
      await database.drop();
      await vhost.delete();
      if (!keepLogs) await rm(logDir, { recursive: true, force: true });
    },
  };
  return rig;
}
