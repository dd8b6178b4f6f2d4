/**
 * The drift the simulated fleet is built with: one entry per branch of the rules, each
 * with the row before, what libvirt runs, an optional race applied while the observation
 * is in flight, and the end state written out literally, so the demo checks the system
 * against these expectations, not against the function under test.
 */
import { PowerState } from '../../shared/power-state.ts';
import type { SyncRule } from '../../shared/sync-rules.ts';
import { VmState } from '../../shared/vm-state.ts';

/** Changes made to a row after the agents read it and before the writer commits. */
export type Race = 'migrate-away' | 'soft-delete' | 'hard-delete';

export interface Scenario {
  name: string;
  row: { powerState: PowerState; vmState: VmState };
  /** The domain's state on the row's host; null: the host does not run it. */
  domain: PowerState | null;
  race: Race | null;
  /** null: the row is gone at the end. */
  expected: { powerState: PowerState; vmState: VmState } | null;
  /** The writer's decision; null when the agent finds nothing to report. */
  rule: SyncRule | null;
}

const { NOSTATE, RUNNING, BLOCKED, PAUSED, SHUTDOWN, SHUTOFF, CRASHED, SUSPENDED } = PowerState;
const { ACTIVE, SHUTOFF: VM_SHUTOFF, STOPPED, ERROR, MIGRATING, PAUSED: VM_PAUSED } = VmState;

const s = (
  name: string,
  row: Scenario['row'],
  domain: PowerState | null,
  expected: Scenario['expected'],
  rule: SyncRule | null,
  race: Race | null = null,
): Scenario => ({ name, row, domain, race, expected, rule });

export const IN_SYNC: readonly Scenario[] = [
  s('in-sync-running', { powerState: RUNNING, vmState: ACTIVE }, RUNNING, { powerState: RUNNING, vmState: ACTIVE }, null),
  s('in-sync-shutoff', { powerState: SHUTOFF, vmState: VM_SHUTOFF }, SHUTOFF, { powerState: SHUTOFF, vmState: VM_SHUTOFF }, null),
  s('in-sync-paused', { powerState: PAUSED, vmState: VM_PAUSED }, PAUSED, { powerState: PAUSED, vmState: VM_PAUSED }, null),
];

export const DRIFT: readonly Scenario[] = [
  s('shut-off-behind-back', { powerState: RUNNING, vmState: ACTIVE }, SHUTOFF, { powerState: SHUTOFF, vmState: VM_SHUTOFF }, 'stopped'),
  s('crashed', { powerState: RUNNING, vmState: ACTIVE }, CRASHED, { powerState: CRASHED, vmState: VM_SHUTOFF }, 'stopped'),
  s('shutting-down', { powerState: RUNNING, vmState: ACTIVE }, SHUTDOWN, { powerState: SHUTDOWN, vmState: VM_SHUTOFF }, 'stopped'),
  s('paused-behind-back', { powerState: RUNNING, vmState: ACTIVE }, PAUSED, { powerState: PAUSED, vmState: ACTIVE }, 'power-only'),
  s('pm-suspended', { powerState: RUNNING, vmState: ACTIVE }, SUSPENDED, { powerState: SUSPENDED, vmState: ACTIVE }, 'power-only'),
  s('no-state-domain', { powerState: RUNNING, vmState: ACTIVE }, NOSTATE, { powerState: NOSTATE, vmState: ACTIVE }, 'power-only'),
  s('stopped-while-error', { powerState: RUNNING, vmState: ERROR }, SHUTOFF, { powerState: SHUTOFF, vmState: ERROR }, 'power-only'),
  s('started-behind-back', { powerState: SHUTOFF, vmState: VM_SHUTOFF }, RUNNING, { powerState: RUNNING, vmState: ACTIVE }, 'running'),
  s('blocked', { powerState: SHUTOFF, vmState: STOPPED }, BLOCKED, { powerState: BLOCKED, vmState: ACTIVE }, 'running'),
  s('vanished', { powerState: RUNNING, vmState: ACTIVE }, null, { powerState: NOSTATE, vmState: ACTIVE }, 'missing'),
  s('already-nostate', { powerState: NOSTATE, vmState: ACTIVE }, null, { powerState: NOSTATE, vmState: ACTIVE }, 'equal'),
  s('migrating-in', { powerState: RUNNING, vmState: MIGRATING }, null, { powerState: RUNNING, vmState: MIGRATING }, 'migrating-in'),
  s('moved-away', { powerState: RUNNING, vmState: ACTIVE }, null, { powerState: RUNNING, vmState: ACTIVE }, 'moved', 'migrate-away'),
  s('soft-deleted', { powerState: RUNNING, vmState: ACTIVE }, null, { powerState: RUNNING, vmState: ACTIVE }, 'deleted', 'soft-delete'),
  s('hard-deleted', { powerState: RUNNING, vmState: ACTIVE }, null, null, 'deleted', 'hard-delete'),
];
