/**
 * What the fleet benches share: a database, a vhost and a node XML directory of their own, and
 * the pipeline serving a test-driver fleet as processes (audit subscriber, state writer, and
 * sync agents with the fleet's hosts dealt round-robin, lifecycle events and the start-up sync
 * off so that only the bench's ticks make work).
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Kysely } from 'kysely';
import type { Database } from '../../shared/db/database.ts';
import type { FleetPlan } from '../../tools/fleet/fleet-plan.ts';
import { fleetLibvirtUri } from '../../tools/fleet/write-fleet.ts';
import type { BenchContext } from './harness.ts';
import { createBenchDatabase, createBenchVhost } from './resources.ts';
import { type BenchService, startBenchService } from './service-processes.ts';

/** The fleet's shape on a bench's command line: `--hosts N --vms N --agents N --drift R` (1,000 × 100, 2 agents, 10 % by default). */
export const FLEET_ARGS = {
  hosts: { type: 'string', default: '1000' },
  vms: { type: 'string', default: '100' },
  agents: { type: 'string', default: '2' },
  drift: { type: 'string', default: '0.1' },
} as const;

export interface FleetWorkspace {
  db: Kysely<Database>;
  databaseUrl: string;
  amqpUrl: string;
  /** Where the fleet's node XML goes (removed at cleanup). */
  fleetDir: string;
  /** The environment every service gets: the workspace's database and vhost. */
  baseEnv: Record<string, string>;
}

export async function createFleetWorkspace(context: BenchContext, options: { databaseName: string; logDir: string }): Promise<FleetWorkspace> {
  const { db, url: databaseUrl } = await createBenchDatabase(context, options.databaseName);
  const { amqpUrl } = await createBenchVhost(context);
  const fleetDir = await mkdtemp(path.join(os.tmpdir(), 'virtsync-bench-fleet-'));
  context.defer('remove node XML', () => rm(fleetDir, { recursive: true, force: true }));
  await rm(options.logDir, { recursive: true, force: true });
  await mkdir(options.logDir, { recursive: true });
  return { db, databaseUrl, amqpUrl, fleetDir, baseEnv: { DATABASE_URL: databaseUrl, AMQP_URL: amqpUrl, LOG_LEVEL: 'info' } };
}

export interface FleetPipeline {
  services: BenchService[];
  /** Agent processes started (fewer than asked when the fleet has fewer hosts). */
  agents: number;
  /** Observations the writer has decided so far (from its "batch committed" log lines). */
  decided(): number;
}

export function startFleetPipeline(
  context: BenchContext,
  workspace: FleetWorkspace,
  options: { plan: FleetPlan; agents: number; logDir: string; agentEnv?: Record<string, string>; agentName?: (index: number) => string },
): FleetPipeline {
  const { baseEnv } = workspace;
  let decided = 0;
  const services: BenchService[] = [
    startBenchService(context, { service: 'audit-subscriber', env: baseEnv, logDir: options.logDir }),
    startBenchService(context, {
      service: 'state-writer',
      env: baseEnv,
      logDir: options.logDir,
      onLogLine: (entry) => {
        if (entry.msg === 'batch committed') decided += Number(entry.observations);
      },
    }),
  ];
  const { hosts } = options.plan;
  const groups = Array.from({ length: Math.min(options.agents, hosts.length) }, (_, i) => hosts.filter((_, h) => h % options.agents === i));
  groups.forEach((group, i) =>
    services.push(
      startBenchService(context, {
        service: 'sync-agent',
        instance: options.agentName?.(i) ?? String(i + 1),
        // No start-up sync: it would commit the drift before the bench's first tick.
        env: { ...baseEnv, AGENT_HOSTS: group.join(','), LIBVIRT_URI: fleetLibvirtUri(workspace.fleetDir), AGENT_LIFECYCLE_EVENTS: 'false', AGENT_STARTUP_SYNC: 'false', ...options.agentEnv },
        logDir: options.logDir,
      }),
    ),
  );
  return { services, agents: groups.length, decided: () => decided };
}
