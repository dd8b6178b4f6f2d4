/**
 * What a fault run amounts to once every process has stopped: the invariants, which
 * processes crashed (and with what), the figures of the FAULT line, and the services'
 * own counts from their logs.
 */
import { readFile } from 'node:fs/promises';
import type { Kysely } from 'kysely';
import { Queue } from '../../../shared/bus/topology.ts';
import type { Database } from '../../../shared/db/database.ts';
import type { FleetPlan } from '../../../tools/fleet/fleet-plan.ts';
import type { BusProbe } from '../../helpers/bus-probe.ts';
import type { BusRecorder } from './bus-recorder.ts';
import type { RigProcess } from './fault-rig.ts';
import { type FaultFigures, formatFaultLine } from './fault-report.ts';
import { checkInvariants, type InvariantReport, isUpdateRule } from './fleet-invariants.ts';
import { type ServiceStats, sumStats } from './service-stats.ts';

export interface FaultOutcome {
  /** Where the services' logs are (kept when an invariant broke). */
  logDir: string;
  fleet: { hosts: number; instances: number; drifted: number; changesExpected: number };
  figures: FaultFigures;
  invariants: InvariantReport;
  /** Processes that exited non-zero (or on their own) without being killed by the test, with what they printed. */
  crashed: string[];
  settled: boolean;
  settleMs: number;
  stats: { writers: ServiceStats; agents: ServiceStats; audit: ServiceStats; all: ServiceStats };
  line: string;
}

/** The first line of what a process printed that names an error (an uncaught one is not a JSON log line). */
async function crashMessage(logFile: string): Promise<string> {
  const text = await readFile(logFile, 'utf8').catch(() => '');
  const lines = text.split('\n').map((line) => line.trim());
  return lines.find((line) => /^[A-Za-z]*error\b/i.test(line)) ?? lines.find((line) => line !== '' && !line.startsWith('{')) ?? 'no message';
}

export async function measureOutcome(input: {
  fault: string;
  plan: FleetPlan;
  db: Kysely<Database>;
  probe: BusProbe;
  recorder: BusRecorder;
  processes: readonly RigProcess[];
  injected: { observations: number; duplicates: number; malformed: number; other: number };
  logDir: string;
  settled: boolean;
  settleMs: number;
}): Promise<FaultOutcome> {
  const { plan, recorder, processes, injected } = input;
  const invariants = await checkInvariants(input.db, plan, recorder.changes);
  const crashed: string[] = [];
  for (const p of processes.filter((p) => !p.killed)) {
    // The tick producer exits 0 by itself after its configured cycles.
    if (p.exit?.code === 0 && (p.exit.requested || p.service === 'tick-producer')) continue;
    crashed.push(`${p.name} (exit ${p.exit?.code ?? 'signal'}${p.exit?.requested === false ? ', on its own' : ''}: ${await crashMessage(p.process.logFile)})`);
  }
  const statsOf = (service: RigProcess['service']): ServiceStats => sumStats(processes.filter((p) => p.service === service).map((p) => p.stats));
  const writers = statsOf('state-writer');
  const audit = statsOf('audit-subscriber');
  const published = recorder.reports.reduce((total, report) => total + report.published, 0);
  const distinctReceived = new Set(recorder.changes.map((c) => c.eventId)).size;
  const routedObservations = new Set(recorder.observations.map((o) => o.observationId)).size;
  const figures: FaultFigures = {
    in: published + injected.observations + injected.duplicates + injected.malformed + injected.other,
    committed: invariants.committed,
    published: recorder.changes.length,
    // Writer decisions beyond the distinct observations the broker routed (a copy sent straight to the writer's queue is not routed).
    duplicates: Math.max(0, writers.observations - routedObservations) + audit.auditDuplicates + (recorder.changes.length - distinctReceived),
    deadlettered: await input.probe.messageCount(Queue.deadLetter),
    lost: invariants.lost,
  };
  return {
    logDir: input.logDir,
    fleet: {
      hosts: plan.hosts.length,
      instances: plan.instances.length,
      drifted: plan.instances.filter((i) => i.scenario.rule !== null).length,
      changesExpected: plan.instances.filter((i) => isUpdateRule(i.scenario.rule)).length,
    },
    figures,
    invariants,
    crashed,
    settled: input.settled,
    settleMs: input.settleMs,
    stats: { writers, agents: statsOf('sync-agent'), audit, all: sumStats(processes.map((p) => p.stats)) },
    line: formatFaultLine(input.fault, figures),
  };
}
