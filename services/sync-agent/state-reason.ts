/**
 * libvirt's reason for a domain's state, for the few observations that need it: a PAUSED or
 * SHUTOFF domain whose row is MIGRATING may be libvirt's own passing state of a live
 * migration (`paused (migrating)`, `paused (starting up)`, `shut off (migrated)`), which the
 * writer must not write (see TRANSITION_REASONS in shared/sync-rules.ts). The reader hands
 * on the reason's number, read in the same libvirt call as the state; the observation
 * carries it in virsh's words (`virsh domstate --reason`), which the contract names.
 */
import { PowerState } from '../../shared/power-state.ts';
import { VmState } from '../../shared/vm-state.ts';

/**
 * virsh's word for each reason of each state, indexed by the reason's number: libvirt's
 * virDomain<State>Reason enums (libvirt-domain.h) as virsh-domain-monitor.c prints them.
 */
const REASON_NAMES: ReadonlyMap<PowerState, readonly string[]> = new Map([
  [PowerState.NOSTATE, ['unknown']],
  [
    PowerState.RUNNING,
    ['unknown', 'booted', 'migrated', 'restored', 'from snapshot', 'unpaused', 'migration canceled', 'save canceled', 'event wakeup', 'crashed', 'post-copy', 'post-copy failed'],
  ],
  [PowerState.BLOCKED, ['unknown']],
  [
    PowerState.PAUSED,
    [
      'unknown',
      'user',
      'migrating',
      'saving',
      'dumping',
      'I/O error',
      'watchdog',
      'from snapshot',
      'shutting down',
      'creating snapshot',
      'crashed',
      'starting up',
      'post-copy',
      'post-copy failed',
      // VIR_DOMAIN_PAUSED_API_ERROR, since libvirt 9.2: a daemon newer than the agent's libvirt can report it.
      'api error',
    ],
  ],
  [PowerState.SHUTDOWN, ['unknown', 'user']],
  [PowerState.SHUTOFF, ['unknown', 'shutdown', 'destroyed', 'crashed', 'migrated', 'saved', 'failed', 'from snapshot', 'daemon']],
  [PowerState.CRASHED, ['unknown', 'panicked']],
  // libvirt's PMSUSPENDED
  [PowerState.SUSPENDED, ['unknown']],
]);

/** A reason in virsh's words; one this table does not know (a newer libvirt) is `unknown`, as virsh prints it. */
export function stateReasonName(state: PowerState, reason: number): string {
  return REASON_NAMES.get(state)?.[reason] ?? 'unknown';
}

export function needsStateReason(row: { vmState: VmState }, state: PowerState): boolean {
  return row.vmState === VmState.MIGRATING && (state === PowerState.PAUSED || state === PowerState.SHUTOFF);
}

/** What an observation carries of the reason: `{ reason }` where the writer needs it, else `{}`. */
export function stateReasonFields(row: { vmState: VmState }, state: PowerState | null, reason: number | undefined): { reason?: string } {
  if (state === null || reason === undefined || !needsStateReason(row, state)) return {};
  return { reason: stateReasonName(state, reason) };
}
