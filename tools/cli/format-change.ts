/** One committed change as one readable line, for `tail` (events) and `history` (audit rows). */
import { type PowerState, powerStateName } from '../../shared/power-state.ts';
import type { VmState } from '../../shared/vm-state.ts';

export interface InstanceState {
  powerState: PowerState;
  vmState: VmState;
}

export interface ChangeLine {
  /** When the change was committed. */
  time: string;
  instanceUuid: string;
  host: string;
  rule: string;
  before: InstanceState;
  after: InstanceState;
}

/** `RUNNING/active → SHUTOFF/shutoff`; a vm state that did not change is still shown on both sides. */
export function formatTransition(before: InstanceState, after: InstanceState): string {
  return `${powerStateName(before.powerState)}/${before.vmState} → ${powerStateName(after.powerState)}/${after.vmState}`;
}

/** Fixed-width rule column so consecutive lines line up (the longest update rule is `power-only`). */
export function formatChangeLine(change: ChangeLine): string {
  return `${change.time}  ${change.instanceUuid}  ${change.host}  ${change.rule.padEnd(10)}  ${formatTransition(change.before, change.after)}`;
}
