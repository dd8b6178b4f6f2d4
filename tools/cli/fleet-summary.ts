/**
 * `virtsync status` as data: the database's rows folded into one summary, the same
 * for the table and for --json. Pure, so the rules (what is overdue) are easy to test.
 */
import type { InstanceStateCount, LastHostSync, RegisteredHost } from '../../shared/db/fleet-status.ts';
import type { HostLivenessView, PipelineHealthView } from '../../shared/db/host-liveness.ts';
import type { LivenessState } from '../../shared/messages/host-liveness.ts';
import { hostReportSchema } from '../../shared/messages/host-report.ts';
import { POWER_STATES, type PowerStateName, powerStateName } from '../../shared/power-state.ts';
import { VM_STATES, type VmState } from '../../shared/vm-state.ts';

export interface LastSyncSummary {
  startedAt: string;
  ageMs: number;
  trigger: string;
  outcome: string;
  error: string | null;
  durationMs: number;
  /** From the stored report; null when it does not parse as a current host report. */
  compared: number | null;
  drifted: number | null;
  missing: number | null;
  unknown: number | null;
}

export interface HostSummary {
  host: string;
  /** Has a compute_hosts row (only registered hosts are ticked). */
  registered: boolean;
  enabled: boolean;
  /** Live instances whose row names this host. */
  instances: number;
  lastSync: LastSyncSummary | null;
  /**
   * Enabled, and no successful sync received within overdueAfterMs (the database's clock of
   * receipt; a failed or skipped report does not count). For a host liveness does not judge
   * yet: no sync report started within overdueAfterMs.
   */
  overdue: boolean;
  /** As the tick producer's leader last judged it; null for a host it does not judge (disabled, or not yet). */
  liveness: LivenessSummary | null;
}

export interface LivenessSummary {
  state: LivenessState;
  since: string;
  reason: string;
  consecutiveFailures: number;
  /** The database's clock when the newest report, and the newest synced one, were received. */
  lastReportReceivedAt: string | null;
  lastSuccessfulSyncAt: string | null;
}

export interface PipelineSummary {
  component: string;
  state: string;
  since: string;
  detail: string;
}

export interface FleetSummary {
  generatedAt: string;
  overdueAfterMs: number;
  hosts: { registered: number; enabled: number; overdue: number; failing: number; unreachable: number; unregisteredWithInstances: number };
  /** Pipeline-level health (`report-path`: `ok`, or `silent` while most hosts are silent together). */
  pipeline: PipelineSummary[];
  instances: {
    live: number;
    softDeleted: number;
    byPowerState: Record<PowerStateName, number>;
    byVmState: Record<VmState, number>;
  };
  hostList: HostSummary[];
}

export interface FleetRows {
  now: Date;
  hosts: readonly RegisteredHost[];
  counts: readonly InstanceStateCount[];
  softDeleted: number;
  lastSyncs: readonly LastHostSync[];
  liveness: readonly HostLivenessView[];
  pipeline: readonly PipelineHealthView[];
}

export function summarizeFleet(rows: FleetRows, overdueAfterMs: number): FleetSummary {
  const byPowerState = Object.fromEntries(POWER_STATES.map((state) => [powerStateName(state), 0])) as Record<PowerStateName, number>;
  const byVmState = Object.fromEntries(VM_STATES.map((state) => [state, 0])) as Record<VmState, number>;
  const perHost = new Map<string, number>();
  let live = 0;
  for (const count of rows.counts) {
    byPowerState[powerStateName(count.powerState)] += count.count;
    byVmState[count.vmState] += count.count;
    perHost.set(count.host, (perHost.get(count.host) ?? 0) + count.count);
    live += count.count;
  }

  const registered = new Map(rows.hosts.map((host) => [host.host, host]));
  const syncs = new Map(rows.lastSyncs.map((sync) => [sync.host, sync]));
  const liveness = new Map(rows.liveness.map((view) => [view.host, view]));
  const names = [...new Set([...registered.keys(), ...perHost.keys()])].sort();
  const hostList = names.map((host): HostSummary => {
    const row = registered.get(host);
    const sync = syncs.get(host);
    const lastSync = sync === undefined ? null : summarizeSync(sync, rows.now);
    const enabled = row?.enabled ?? false;
    return {
      host,
      registered: row !== undefined,
      enabled,
      instances: perHost.get(host) ?? 0,
      lastSync,
      overdue: enabled && isOverdue(liveness.get(host), lastSync, rows.now, overdueAfterMs),
      liveness: summarizeLiveness(liveness.get(host)),
    };
  });

  return {
    generatedAt: rows.now.toISOString(),
    overdueAfterMs,
    hosts: {
      registered: rows.hosts.length,
      enabled: rows.hosts.filter((host) => host.enabled).length,
      overdue: hostList.filter((host) => host.overdue).length,
      failing: hostList.filter((host) => host.liveness?.state === 'failing').length,
      unreachable: hostList.filter((host) => host.liveness?.state === 'unreachable').length,
      unregisteredWithInstances: hostList.filter((host) => !host.registered).length,
    },
    pipeline: rows.pipeline.map((row) => ({ component: row.component, state: row.state, since: row.since.toISOString(), detail: row.detail })),
    instances: { live, softDeleted: rows.softDeleted, byPowerState, byVmState },
    hostList,
  };
}

function summarizeSync(sync: LastHostSync, now: Date): LastSyncSummary {
  const report = hostReportSchema.safeParse(sync.report);
  const detail = report.success ? report.data : null;
  return {
    startedAt: sync.startedAt.toISOString(),
    ageMs: Math.max(0, now.getTime() - sync.startedAt.getTime()),
    trigger: sync.trigger,
    outcome: sync.outcome,
    error: sync.error,
    durationMs: sync.durationMs,
    compared: detail?.compared ?? null,
    drifted: detail?.drifted ?? null,
    missing: detail?.missing ?? null,
    unknown: detail?.unknown ?? null,
  };
}

function isOverdue(liveness: HostLivenessView | undefined, lastSync: LastSyncSummary | null, now: Date, overdueAfterMs: number): boolean {
  if (liveness === undefined) return lastSync === null || lastSync.ageMs > overdueAfterMs;
  return liveness.lastSyncedAt === null || now.getTime() - liveness.lastSyncedAt.getTime() > overdueAfterMs;
}

function summarizeLiveness(view: HostLivenessView | undefined): LivenessSummary | null {
  if (view === undefined) return null;
  return {
    state: view.state,
    since: view.since.toISOString(),
    reason: view.reason,
    consecutiveFailures: view.consecutiveFailures,
    lastReportReceivedAt: view.lastReceivedAt?.toISOString() ?? null,
    lastSuccessfulSyncAt: view.lastSyncedAt?.toISOString() ?? null,
  };
}
