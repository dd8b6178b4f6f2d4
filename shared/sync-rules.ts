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
}

/** The row's current state; `undefined` is passed for a row that no longer exists. */
export interface InstanceSnapshot {
  host: string;
  powerState: PowerState;
  vmState: VmState;
  /** Soft-deleted (Nova keeps deleted rows with a deleted flag). */
  deleted: boolean;
  /** When power_state was last set, by us or by the cloud; null if never. */
  powerStateUpdatedAt: Date | null;
}

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

export type SyncRule = UpdateRule | SkipRule;

export type Decision =
  | { action: 'update'; rule: UpdateRule; powerState: PowerState; vmState: VmState }
  | { action: 'skip'; rule: SkipRule };

export const UPDATE_RULES = ['stopped', 'running', 'power-only', 'missing'] as const satisfies readonly UpdateRule[];
export const SKIP_RULES = [
  'deleted',
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

export function decide(observed: ObservedState, row: InstanceSnapshot | undefined): Decision {
  if (row === undefined || row.deleted) return skip('deleted');

  const foundOnHypervisor = observed.powerState !== null;
  if (row.host !== observed.host) return skip(foundOnHypervisor ? 'stale-host' : 'moved');

  if (row.powerStateUpdatedAt !== null && observed.observedAt <= row.powerStateUpdatedAt) {
    return skip('stale-observation');
  }

  // The seed's loop falls out of its "moved" and "migrating in" branches with
  // vm_power_state still holding the previous instance's value (or unbound on the
  // first one) and goes on to write it. That is a bug; here those branches change nothing.
  if (!foundOnHypervisor && row.vmState === VmState.MIGRATING) return skip('migrating-in');

  const powerState = observed.powerState ?? PowerState.NOSTATE;
  if (powerState === row.powerState) return skip('equal');

  if (STOPPED_STATES.has(powerState) && row.vmState === VmState.ACTIVE) {
    return { action: 'update', rule: 'stopped', powerState, vmState: VmState.SHUTOFF };
  }
  if (RUNNING_STATES.has(powerState)) {
    return { action: 'update', rule: 'running', powerState, vmState: VmState.ACTIVE };
  }
  return {
    action: 'update',
    rule: foundOnHypervisor ? 'power-only' : 'missing',
    powerState,
    vmState: row.vmState,
  };
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
  deleted: 'the instance was deleted',
  moved: 'the instance moved to another host',
  'migrating-in': 'the instance is migrating to this host and has not arrived yet',
  'stale-host': 'reported by a host that does not own the instance',
  'stale-observation': 'observed before the row last changed',
  equal: 'the hypervisor agrees with the database',
};
