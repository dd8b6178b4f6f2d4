/**
 * The decision at the heart of virtsync: Nova's `_sync_power_states` rules, as a pure
 * function over what the hypervisor reported and the instance row as it is *now*
 * (the state writer re-reads it under a row lock just before calling this), plus the two
 * checks a bus needs: the cloud's writes since the agent read the row win, and among one
 * host's looks the newest wins. No timestamp takes part in any decision.
 */
import { PowerState } from './power-state.ts';
import { VmState } from './vm-state.ts';

/**
 * Where a look stands in its host's order: the epoch the database handed the agent when it
 * started, and the agent's count of hypervisor answers since. No clock takes part, so a
 * skewed or hostile clock cannot reorder anything; a restarted agent's epoch is higher.
 */
export interface LookOrder {
  epoch: number;
  seq: number;
}

/**
 * The columns of the cloud's row a decision depends on. The cloud changing any of them after
 * an agent read the row outranks that agent's observation.
 */
export interface CloudState {
  host: string;
  powerState: PowerState;
  vmState: VmState;
  /** An operation the cloud has in progress (Nova's task_state); the sync keeps out of its way. */
  taskState: string | null;
  /** Soft-deleted (Nova keeps deleted rows with a deleted flag). */
  deleted: boolean;
}

/** What one agent saw for one instance. `powerState: null` = the hypervisor does not know it. */
export interface ObservedState {
  host: string;
  powerState: PowerState | null;
  look: LookOrder;
  /** The row as the agent read it, before it asked the hypervisor. */
  expected: CloudState;
  /** libvirt's reason for the state (virsh's words, e.g. `migrating`), when the agent read it. */
  reason?: string;
}

/** The row's current state and virtsync's own bookkeeping of it; `undefined` for a row that no longer exists. */
export interface InstanceSnapshot extends CloudState {
  /** Consecutive looks of the owning host that did not find the instance. */
  missedReports: number;
  /** The newest look decided on for this row (applied, counted, or found equal), and whose it was. */
  lastLook: (LookOrder & { host: string }) | null;
  /** power_state and vm_state as virtsync last wrote them: telling its own writes from the cloud's. */
  written: { powerState: PowerState; vmState: VmState } | null;
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
  | 'missing'
  /** Its host has been unreachable past the operator's delay (UNREACHABLE_HOST_POLICY=nostate): power_state NOSTATE. */
  | 'host-unreachable';

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
  /** The cloud changed the row after the agent read it: the cloud's write wins, the next look decides. */
  | 'changed-after-read'
  /** Not newer than a look of the same host already decided on (reordered or duplicate delivery). */
  | 'stale-observation'
  /** From an agent that predates look ordering: it cannot be ordered, so it is logged and left to a new agent. */
  | 'legacy-contract'
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

export const UPDATE_RULES = ['stopped', 'running', 'power-only', 'missing', 'host-unreachable'] as const satisfies readonly UpdateRule[];
export const COUNT_RULES = ['missing-grace', 'reappeared'] as const satisfies readonly CountRule[];
export const SKIP_RULES = [
  'deleted',
  'task-in-progress',
  'in-transition',
  'moved',
  'migrating-in',
  'stale-host',
  'changed-after-read',
  'stale-observation',
  'legacy-contract',
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

  if (changedAfterRead(row, observed.expected)) return skip('changed-after-read');
  // Redelivered, or overtaken by a newer look of the same host: a miss never counts twice.
  if (row.lastLook !== null && row.lastLook.host === observed.host && !isNewerLook(observed.look, row.lastLook)) {
    return skip('stale-observation');
  }

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
 * The row after a decision, or undefined when the decision writes nothing. Every decision on
 * the owning host's look (an update, a count, or confirming an equal state) records that
 * look, so an older one arriving later is recognised as stale; an update also records what
 * virtsync wrote.
 */
export function nextSnapshot(row: InstanceSnapshot | undefined, decision: Decision, observed: ObservedState): InstanceSnapshot | undefined {
  if (row === undefined) return undefined;
  const lastLook = { host: observed.host, ...observed.look };
  if (decision.action === 'skip') return decision.rule === 'equal' ? { ...row, lastLook } : undefined;
  if (decision.action === 'count') return { ...row, lastLook, missedReports: decision.missedReports };
  const written = { powerState: decision.powerState, vmState: decision.vmState };
  return { ...row, ...written, lastLook, written, missedReports: decision.missedReports };
}

/**
 * An instance of a host that has been unreachable past the operator's delay, under the
 * `nostate` policy: nobody can say what it is doing, so it becomes NOSTATE, unless the row is
 * gone, has moved, or the cloud is busy with it (an operation, a migration). Not a look: the
 * look bookkeeping stays as it is, and the host's next look decides again when it is back.
 */
export function decideUnreachableHost(row: InstanceSnapshot | undefined, host: string): Decision {
  if (row === undefined || row.deleted) return skip('deleted');
  if (row.host !== host) return skip('moved');
  if (row.taskState !== null) return skip('task-in-progress');
  if (row.vmState === VmState.MIGRATING) return skip('migrating-in');
  if (row.powerState === PowerState.NOSTATE) return skip('equal');
  return { action: 'update', rule: 'host-unreachable', powerState: PowerState.NOSTATE, vmState: row.vmState, missedReports: row.missedReports };
}

/** Whether `a` is a later look than `b` of the same host. */
export function isNewerLook(a: LookOrder, b: LookOrder): boolean {
  return a.epoch > b.epoch || (a.epoch === b.epoch && a.seq > b.seq);
}

/**
 * The cloud changed the row after the agent read it: a state column differs from what the
 * agent read, and the difference is not virtsync's own last write. A save that changes none
 * of them is no change, so the cloud saving rows cannot starve the sync.
 */
export function changedAfterRead(row: CloudState & Pick<InstanceSnapshot, 'written'>, expected: CloudState): boolean {
  if (row.host !== expected.host || row.taskState !== expected.taskState || row.deleted !== expected.deleted) return true;
  const asRead = row.powerState === expected.powerState && row.vmState === expected.vmState;
  const asVirtsyncWrote = row.written !== null && row.powerState === row.written.powerState && row.vmState === row.written.vmState;
  return !asRead && !asVirtsyncWrote;
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
  'host-unreachable': 'its host has been unreachable longer than the operator allows; its state is unknown',
  'missing-grace': 'the hypervisor does not know the instance, within the missed-report grace',
  reappeared: 'the hypervisor knows the instance again',
  deleted: 'the instance was deleted',
  'task-in-progress': 'the cloud has an operation in progress on the instance',
  'in-transition': 'libvirt paused or stopped the domain only to migrate or start it',
  moved: 'the instance moved to another host',
  'migrating-in': 'the instance is migrating to this host and has not arrived yet',
  'stale-host': 'reported by a host that does not own the instance',
  'changed-after-read': 'the cloud changed the instance after the agent read it; the next look decides',
  'stale-observation': 'an equal or newer look of the same host was already decided on',
  'legacy-contract': 'sent by an agent without look ordering (upgrade it); a new agent\'s look decides',
  equal: 'the hypervisor agrees with the database',
};
