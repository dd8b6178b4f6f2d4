/**
 * Report-only mode as a pure function over the sync rules. The writer writes nothing to the
 * cloud's row; it keeps a shadow entry of what it would have written, and decides the next
 * observation on the row as it would be (the shadow laid over the real row), so miss counts
 * build up and a drift is proposed once. An entry holds only while the cloud's row is the one
 * it was derived from (its `base`): once the cloud changes a state column, the real row
 * decides again. What the writer proposes is the change to the real row as it is.
 */
import type { PowerState } from './power-state.ts';
import { type CloudState, type Decision, decide, type InstanceSnapshot, type LookOrder, nextSnapshot, type ObservedState, type SyncPolicy, type UpdateRule } from './sync-rules.ts';
import type { VmState } from './vm-state.ts';

export interface InstanceState {
  powerState: PowerState;
  vmState: VmState;
}

export interface ShadowEntry {
  /** The cloud's row when the entry was made. */
  base: CloudState;
  /** power_state and vm_state as the writer would have left them. */
  state: InstanceState;
  missedReports: number;
  lastLook: (LookOrder & { host: string }) | null;
}

/** What an agent needs of an entry to know whether the writer waits to hear of the instance. */
export type ShadowSummary = Pick<ShadowEntry, 'base' | 'state' | 'missedReports'>;

export interface ShadowStep {
  decision: Decision;
  /** The entry after the decision; undefined when the decision records nothing (as nextSnapshot). */
  entry: ShadowEntry | undefined;
  /** The change to the real row an update amounts to, unless it would leave the real row as it is. */
  proposal: { rule: UpdateRule; before: InstanceState; after: InstanceState } | undefined;
}

/** Whether the cloud's row still holds what the entry was derived from: a change by the cloud voids it. */
export function shadowApplies(entry: Pick<ShadowEntry, 'base'>, row: CloudState): boolean {
  return sameCloudState(entry.base, row);
}

/**
 * Whether the writer needs to hear the instance's state even when the hypervisor agrees with
 * the real row: the entry would have the row elsewhere, or is counting misses.
 */
export function shadowAwaitsReport(entry: ShadowSummary | undefined, row: CloudState): boolean {
  if (entry === undefined || !shadowApplies(entry, row)) return false;
  return entry.missedReports > 0 || !sameState(entry.state, row);
}

/**
 * Decides an observation in report-only mode. With an entry that applies, the rules see the
 * row as the writer would have left it, and the agent (which reads the real row) as having
 * read that row when what it read is the entry's base. Without one, they see the real row.
 */
export function decideInShadow(observed: ObservedState, row: InstanceSnapshot | undefined, entry: ShadowEntry | undefined, policy: SyncPolicy): ShadowStep {
  const applies = row !== undefined && entry !== undefined && shadowApplies(entry, row);
  const seen = applies ? shadowedRow(row, entry) : row;
  const seenObserved = applies && sameCloudState(observed.expected, entry.base) ? { ...observed, expected: { ...observed.expected, ...entry.state } } : observed;
  const decision = decide(seenObserved, seen, policy);
  const next = nextSnapshot(seen, decision, seenObserved);
  if (row === undefined || next === undefined) return { decision, entry: undefined, proposal: undefined };
  const after = { powerState: next.powerState, vmState: next.vmState };
  return {
    decision,
    entry: { base: cloudStateOf(row), state: after, missedReports: next.missedReports, lastLook: next.lastLook },
    proposal: decision.action === 'update' && !sameState(after, row) ? { rule: decision.rule, before: { powerState: row.powerState, vmState: row.vmState }, after } : undefined,
  };
}

/** The entry over the real row. `written` is not carried: the agent only ever read the real row, and the base stands for it. */
function shadowedRow(row: InstanceSnapshot, entry: ShadowEntry): InstanceSnapshot {
  return { ...row, ...entry.state, missedReports: entry.missedReports, lastLook: entry.lastLook, written: null };
}

function cloudStateOf({ host, powerState, vmState, taskState, deleted }: CloudState): CloudState {
  return { host, powerState, vmState, taskState, deleted };
}

function sameState(a: InstanceState, b: InstanceState): boolean {
  return a.powerState === b.powerState && a.vmState === b.vmState;
}

function sameCloudState(a: CloudState, b: CloudState): boolean {
  return a.host === b.host && a.taskState === b.taskState && a.deleted === b.deleted && sameState(a, b);
}
