/**
 * One full cycle of virtsync over a simulated fleet, every service a separate process:
 * generate the fleet, start the audit subscriber and the agents, let the tick producer
 * run one cycle, stage the in-flight races (migrations finishing, deletions), start the
 * state writer, wait for every observation to be decided and every change to be
 * audited, then check the database row by row against the scenarios' end states.
 */
import type { Kysely } from 'kysely';
import { countUnpublished } from '../../shared/db/change-outbox.ts';
import { countRows } from '../../shared/db/count-rows.ts';
import type { Database } from '../../shared/db/database.ts';
import type { SyncRule } from '../../shared/sync-rules.ts';
import { type FleetOptions, type FleetPlan, planFleet } from '../fleet/fleet-plan.ts';
import { verifyFleet } from '../fleet/verify-fleet.ts';
import { applyRaces, fleetLibvirtUri, insertFleetRows, writeNodeXmlFiles } from '../fleet/write-fleet.ts';
import { waitFor } from '../wait-for.ts';
import { watchBus } from './bus-watch.ts';
import { concludeDemo, type DemoSummary } from './demo-summary.ts';
import { type ServiceProcess, startServiceProcess } from './service-process.ts';
import { freePort, readWriterDecisions } from './writer-decisions.ts';

export interface DemoOptions {
  databaseUrl: string;
  amqpUrl: string;
  fleet: FleetOptions;
  fleetDir: string;
  logDir: string;
  /** The tick interval for the one cycle: hosts are spread over it. */
  cycleMs: number;
  agents: number;
  timeoutMs: number;
  progress: (line: string) => void;
}


export async function runDemo(db: Kysely<Database>, options: DemoOptions): Promise<DemoSummary> {
  const started = Date.now();
  const { progress } = options;

  const plan = planFleet(options.fleet);
  progress(`generating ${plan.hosts.length} hosts, ${plan.instances.length} instances`);
  await writeNodeXmlFiles(plan, options.fleetDir);
  await insertFleetRows(db, plan, (done, total) => progress(`  rows ${done}/${total}`));
  const generatedAt = Date.now();

  const baseEnv = { DATABASE_URL: options.databaseUrl, AMQP_URL: options.amqpUrl, LOG_LEVEL: 'info' };
  const services: ServiceProcess[] = [];
  const watch = await watchBus(options.amqpUrl);
  try {
    services.push(startServiceProcess({ service: 'audit-subscriber', env: baseEnv, logDir: options.logDir }));
    const agentHosts = dealHosts(plan.hosts, options.agents);
    agentHosts.forEach((hosts, index) =>
      services.push(
        startServiceProcess({
          service: 'sync-agent',
          instance: String(index + 1),
          // test:///<file> connections are private to the agent: no one else can change them, so no events. The demo
          // stages its races between one look per host (its tick) and the writer's start: no look at start.
          env: { ...baseEnv, AGENT_HOSTS: hosts.join(','), LIBVIRT_URI: fleetLibvirtUri(options.fleetDir), AGENT_LIFECYCLE_EVENTS: 'false', AGENT_STARTUP_SYNC: 'false' },
          logDir: options.logDir,
        }),
      ),
    );
    const producer = startServiceProcess({
      service: 'tick-producer',
      env: { ...baseEnv, TICK_INTERVAL_MS: String(options.cycleMs), TICK_MAX_CYCLES: '1' },
      logDir: options.logDir,
    });
    services.push(producer);
    progress(`started audit-subscriber, ${agentHosts.length} sync-agent(s), tick-producer (one cycle over ${options.cycleMs} ms)`);

    await waitFor('a host report from every host', () => new Set(watch.reports.map((r) => r.host)).size >= plan.hosts.length, {
      timeoutMs: options.timeoutMs,
    });
    const failed = watch.reports.filter((report) => report.outcome === 'failed');
    if (failed.length > 0) throw new Error(`host syncs failed: ${failed.map((r) => `${r.host}: ${r.error}`).join('; ')}`);
    const cycleDoneAt = Date.now();
    const published = sum(watch.reports.map((r) => r.published));
    progress(`cycle done: ${published} observations queued for the writer`);

    await applyRaces(db, plan);
    progress('staged in-flight races: migrations finished, instances deleted');

    const writerPort = await freePort();
    services.push(startServiceProcess({ service: 'state-writer', env: { ...baseEnv, HTTP_PORT: String(writerPort) }, logDir: options.logDir }));
    let decisions = new Map<SyncRule, number>();
    const outboxCount = () => countRows(db.selectFrom('change_outbox'));
    const auditCount = () => countRows(db.selectFrom('audit_log'));
    await waitFor(
      'every observation decided, published and audited',
      async () => {
        decisions = await readWriterDecisions(writerPort).catch(() => decisions);
        if (sum([...decisions.values()]) < published) return false;
        const committed = await outboxCount();
        return (await countUnpublished(db)) === 0 && (await auditCount()) === committed && watch.changes.length >= committed;
      },
      { timeoutMs: options.timeoutMs },
    );
    const committedAt = Date.now();
    const [rowsCommitted, auditRows, mismatches] = [await outboxCount(), await auditCount(), await verifyFleet(db, plan)];

    const serviceExitCodes: Record<string, number | null> = {};
    for (const service of services) serviceExitCodes[service.name] = await service.stop();
    services.length = 0;

    const reports = watch.reports;
    return concludeDemo(
      {
      hosts: plan.hosts.length,
      instances: plan.instances.length,
      compared: sum(reports.map((r) => r.compared)),
      hostsWithCountMismatch: reports.filter((r) => r.dbCount !== r.hypervisorCount).length,
      unknownDomains: sum(reports.map((r) => r.unknown)),
      observationsPublished: published,
      rules: ruleTable(plan, decisions),
      rowsCommitted,
      eventsReceivedDownstream: watch.changes.length,
      auditRows,
      mismatches,
      serviceExitCodes,
      timingsMs: { generate: generatedAt - started, cycle: cycleDoneAt - generatedAt, commit: committedAt - cycleDoneAt, total: Date.now() - started },
      },
      watch.invalid.length,
    );
  } finally {
    await Promise.all(services.map((service) => service.stop()));
    await watch.close();
  }
}

function dealHosts(hosts: readonly string[], agents: number): string[][] {
  const groups: string[][] = Array.from({ length: Math.min(agents, hosts.length) }, () => []);
  hosts.forEach((host, index) => groups[index % groups.length]?.push(host));
  return groups;
}

function ruleTable(plan: FleetPlan, found: ReadonlyMap<SyncRule, number>): DemoSummary['rules'] {
  const expected = new Map<SyncRule, number>();
  for (const { scenario } of plan.instances) {
    if (scenario.rule !== null) expected.set(scenario.rule, (expected.get(scenario.rule) ?? 0) + 1);
  }
  const rules = new Set<SyncRule>([...expected.keys(), ...found.keys()]);
  return [...rules].map((rule) => ({ rule, expected: expected.get(rule) ?? 0, found: found.get(rule) ?? 0 }));
}

function sum(values: readonly number[]): number {
  return values.reduce((total, value) => total + value, 0);
}
