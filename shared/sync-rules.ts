/**
 * The decision at the heart of virtsync: Nova's `_sync_power_states` rules, as a pure
 * function over what the hypervisor reported and the instance row as it is *now*
 * (the state writer re-reads it under a row lock just before calling this).
 */
import { PowerState } from './power-state.ts';
import { VmState } from './vm-state.ts';

/** What one agent saw for one instance. `powerState: null` = the hypervisor does not know it. */
export interface ObservedState {
  host: string;
  powerState: PowerState | null;
  observedAt: Date;
  /** libvirt's reason for the state (virsh's words, e.g. `migrating`), when the agent read it. */
  reason?: string;
}

/** The row's current state; `undefined` is passed for a row that no longer exists. */
export interface InstanceSnapshot {
  host: string;
  powerState: PowerState;
  vmState: VmState;
  /** Soft-deleted (Nova keeps deleted rows with a deleted flag). */
  deleted: boolean;
  /**
   * When the power state was last established: set by the cloud, or changed or confirmed by an
   * observation from the owning host. Anything observed earlier is stale. Null if never.
   */
  powerStateUpdatedAt: Date | null;
  /** An operation the cloud has in progress (Nova's task_state); the sync keeps out of its way. */
  taskState: string | null;
  /** Consecutive cycles the hypervisor did not know the instance. */
  missedReports: number;
  /** observedAt of the last miss counted. */
  lastMissedAt: Date | null;
}

export interface SyncPolicy {
  /** Cycles an instance must be missing before it becomes NOSTATE; 1 is the seed's behaviour. */
  missingGraceCycles: number;
}

export const SEED_POLICY: SyncPolicy = { missingGraceCycles: 1 };

/** Rules that change the row. */
export type UpdateRule =
  /** SHUTOFF/SHUTDOWN/CRASHED while the cloud thought ACTIVE: power_state + vm_state SHUTOFF. */
  | 'stopped'
  /** RUNNING/BLOCKED: power_state + vm_state ACTIVE. */
  | 'running'
  /** Any other state, or SHUTOFF-like on a non-ACTIVE row: power_state only. */
  | 'power-only'
  /** Not on the hypervisor, not migrating, not moved: power_state NOSTATE. */
  | 'missing';

/** Rules that leave the row alone. */
export type SkipRule =
  /** The row is gone or soft-deleted: nothing to sync. */
  | 'deleted'
  /** The cloud has an operation in progress (task_state set): like modern Nova, leave the row alone. */
  | 'task-in-progress'
  /** libvirt holds the domain in a state of its own making for a moment (paused to migrate or to start, shut off as migrated away). */
  | 'in-transition'
  /** Not found here, but the row now names another host: a migration finished. */
  | 'moved'
  /** Not found here, the row names this host and is MIGRATING: it has not arrived yet. */
  | 'migrating-in'
  /** Found on a host that does not own the row (late or misrouted report). */
  | 'stale-host'
  /** Observed no later than the row's last power-state change (reordered or duplicate delivery). */
  | 'stale-observation'
  /** The hypervisor agrees with the row. */
  | 'equal';

/** Rules that only keep the missed-report count. */
export type CountRule =
  /** Missing, but fewer consecutive cycles than the grace allows: count it, change nothing else. */
  | 'missing-grace'
  /** Known to the hypervisor again and in agreement with the row: the count starts over. */
  | 'reappeared';

export type SyncRule = UpdateRule | CountRule | SkipRule;

export type Decision =
  | { action: 'update'; rule: UpdateRule; powerState: PowerState; vmState: VmState; missedReports: number }
  | { action: 'count'; rule: CountRule; missedReports: number }
  | { action: 'skip'; rule: SkipRule };

export const UPDATE_RULES = ['stopped', 'running', 'power-only', 'missing'] as const satisfies readonly UpdateRule[];
export const COUNT_RULES = ['missing-grace', 'reappeared'] as const satisfies readonly CountRule[];
export const SKIP_RULES = [
  'deleted',
  'task-in-progress',
  'in-transition',
  'moved',
  'migrating-in',
  'stale-host',
  'stale-observation',
  'equal',
] as const satisfies readonly SkipRule[];

const STOPPED_STATES: ReadonlySet<PowerState> = new Set([
  PowerState.SHUTOFF,
  PowerState.SHUTDOWN,
  PowerState.CRASHED,
]);
const RUNNING_STATES: ReadonlySet<PowerState> = new Set([PowerState.RUNNING, PowerState.BLOCKED]);

/**
 * States with reasons that are libvirt's passing moves, not the guest's state: a live
 * migration pauses the source (`paused (migrating)`, `post-copy`), starts the destination
 * paused (`paused (starting up)`), and leaves a persistent source `shut off (migrated)`.
 * Writing them would put PAUSED or SHUTOFF on a VM that never stopped running.
 */
export const TRANSITION_REASONS: ReadonlyMap<PowerState, ReadonlySet<string>> = new Map([
  [PowerState.PAUSED, new Set(['migrating', 'starting up', 'post-copy'])],
  [PowerState.SHUTOFF, new Set(['migrated'])],
]);

export function isTransition(powerState: PowerState | null, reason: string | undefined): boolean {
  return powerState !== null && reason !== undefined && (TRANSITION_REASONS.get(powerState)?.has(reason) ?? false);
}

export function decide(observed: ObservedState, row: InstanceSnapshot | undefined, policy: SyncPolicy = SEED_POLICY): Decision {
  if (row === undefined || row.deleted) return skip('deleted');

  const foundOnHypervisor = observed.powerState !== null;
  if (row.host !== observed.host) return skip(foundOnHypervisor ? 'stale-host' : 'moved');
  if (row.taskState !== null) return skip('task-in-progress');
  if (isTransition(observed.powerState, observed.reason)) return skip('in-transition');

  if (isNoLaterThan(observed.observedAt, row.powerStateUpdatedAt)) return skip('stale-observation');
  // A miss already counted (redelivered, or older than the last one) must not count twice.
  if (!foundOnHypervisor && isNoLaterThan(observed.observedAt, row.lastMissedAt)) return skip('stale-observation');

  // The seed's loop falls out of its "moved" and "migrating in" branches with
  // vm_power_state still holding the previous instance's value (or unbound on the
  // first one) and goes on to write it. That is a bug; here those branches change nothing.
  if (!foundOnHypervisor && row.vmState === VmState.MIGRATING) return skip('migrating-in');

  const powerState = observed.powerState ?? PowerState.NOSTATE;
  if (powerState === row.powerState) {
    return foundOnHypervisor && row.missedReports > 0 ? { action: 'count', rule: 'reappeared', missedReports: 0 } : skip('equal');
  }

  if (!foundOnHypervisor) {
    const missedReports = row.missedReports + 1;
    if (missedReports < policy.missingGraceCycles) return { action: 'count', rule: 'missing-grace', missedReports };
    return { action: 'update', rule: 'missing', powerState, vmState: row.vmState, missedReports };
  }
  if (STOPPED_STATES.has(powerState) && row.vmState === VmState.ACTIVE) {
    return { action: 'update', rule: 'stopped', powerState, vmState: VmState.SHUTOFF, missedReports: 0 };
  }
  if (RUNNING_STATES.has(powerState)) {
    return { action: 'update', rule: 'running', powerState, vmState: VmState.ACTIVE, missedReports: 0 };
  }
  return { action: 'update', rule: 'power-only', powerState, vmState: row.vmState, missedReports: 0 };
}

/**
 * The row after a decision, or undefined when the decision writes nothing. Every decision
 * that applies the owning host's observation (an update, a count, or confirming an equal
 * state) stamps its time, so an older observation arriving later is recognised as stale.
 */
export function nextSnapshot(row: InstanceSnapshot | undefined, decision: Decision, observedAt: Date): InstanceSnapshot | undefined {
  if (row === undefined) return undefined;
  if (decision.action === 'skip') return decision.rule === 'equal' ? { ...row, powerStateUpdatedAt: observedAt } : undefined;
  const missed = decision.rule === 'missing' || decision.rule === 'missing-grace';
  const counted = { missedReports: decision.missedReports, lastMissedAt: missed ? observedAt : row.lastMissedAt, powerStateUpdatedAt: observedAt };
  if (decision.action === 'count') return { ...row, ...counted };
  return { ...row, ...counted, powerState: decision.powerState, vmState: decision.vmState };
}

function isNoLaterThan(at: Date, reference: Date | null): boolean {
  return reference !== null && at.getTime() <= reference.getTime();
}

function skip(rule: SkipRule): Decision {
  return { action: 'skip', rule };
}

/** One sentence per rule, for the audit trail and logs. */
export const RULE_REASONS: Record<SyncRule, string> = {
  stopped: 'the hypervisor reports the instance stopped while the cloud had it active',
  running: 'the hypervisor reports the instance running',
  'power-only': 'the hypervisor reports another power state',
  missing: 'the hypervisor does not know the instance',
  'missing-grace': 'the hypervisor does not know the instance, within the missed-report grace',
  reappeared: 'the hypervisor knows the instance again',
  deleted: 'the instance was deleted',
  'task-in-progress': 'the cloud has an operation in progress on the instance',
  'in-transition': 'libvirt paused or stopped the domain only to migrate or start it',
  moved: 'the instance moved to another host',
  'migrating-in': 'the instance is migrating to this host and has not arrived yet',
  'stale-host': 'reported by a host that does not own the instance',
  'stale-observation': 'observed before the row last changed',
  equal: 'the hypervisor agrees with the database',
};
