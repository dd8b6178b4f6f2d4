import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PowerState } from '../../../shared/power-state.ts';
import { type CloudState, type InstanceSnapshot, type ObservedState, SEED_POLICY } from '../../../shared/sync-rules.ts';
import { decideInShadow, type ShadowEntry, shadowApplies, shadowAwaitsReport } from '../../../shared/sync-shadow.ts';
import { VmState } from '../../../shared/vm-state.ts';

const HOST = 'compute-1';
const RUNNING_ACTIVE = { powerState: PowerState.RUNNING, vmState: VmState.ACTIVE };
const SHUTOFF_SHUTOFF = { powerState: PowerState.SHUTOFF, vmState: VmState.SHUTOFF };

function cloud(overrides: Partial<CloudState> = {}): CloudState {
  return { host: HOST, ...RUNNING_ACTIVE, taskState: null, deleted: false, ...overrides };
}

function row(overrides: Partial<InstanceSnapshot> = {}): InstanceSnapshot {
  return { ...cloud(), missedReports: 0, lastLook: null, written: null, ...overrides };
}

/** The agent read the real row as `expected` (by default the row as it is). */
function observed(powerState: PowerState | null, seq: number, expected: CloudState = cloud()): ObservedState {
  return { host: HOST, powerState, look: { epoch: 1, seq }, expected };
}

function entry(overrides: Partial<ShadowEntry> = {}): ShadowEntry {
  return { base: cloud(), state: SHUTOFF_SHUTOFF, missedReports: 0, lastLook: { host: HOST, epoch: 1, seq: 1 }, ...overrides };
}

describe('decideInShadow', () => {
  test('a drift with no entry: proposed against the real row, and an entry derived from it', () => {
    const step = decideInShadow(observed(PowerState.SHUTOFF, 1), row(), undefined, SEED_POLICY);
    assert.equal(step.decision.rule, 'stopped');
    assert.deepEqual(step.proposal, { rule: 'stopped', before: RUNNING_ACTIVE, after: SHUTOFF_SHUTOFF });
    assert.deepEqual(step.entry, entry());
  });

  test('the same drift again: equal to the entry, nothing proposed, the newer look recorded', () => {
    const step = decideInShadow(observed(PowerState.SHUTOFF, 2), row(), entry(), SEED_POLICY);
    assert.equal(step.decision.rule, 'equal');
    assert.equal(step.proposal, undefined);
    assert.deepEqual(step.entry, entry({ lastLook: { host: HOST, epoch: 1, seq: 2 } }));
  });

  test('a redelivered look is stale against the entry', () => {
    const step = decideInShadow(observed(PowerState.SHUTOFF, 1), row(), entry(), SEED_POLICY);
    assert.equal(step.decision.rule, 'stale-observation');
    assert.equal(step.entry, undefined);
  });

  test('back in agreement with the real row: the entry converges, nothing proposed (the real row would not change)', () => {
    const step = decideInShadow(observed(PowerState.RUNNING, 2), row(), entry(), SEED_POLICY);
    assert.equal(step.decision.rule, 'running');
    assert.equal(step.proposal, undefined);
    assert.deepEqual(step.entry?.state, RUNNING_ACTIVE);
  });

  test('a further change on top of the entry is proposed as the change to the real row', () => {
    const step = decideInShadow(observed(PowerState.PAUSED, 2), row(), entry(), SEED_POLICY);
    assert.equal(step.decision.rule, 'power-only');
    assert.deepEqual(step.proposal, { rule: 'power-only', before: RUNNING_ACTIVE, after: { powerState: PowerState.PAUSED, vmState: VmState.SHUTOFF } });
  });

  test('misses count up in the entry, and the grace ends in a proposal', () => {
    const policy = { missingGraceCycles: 3 };
    let current: ShadowEntry | undefined;
    const rules: string[] = [];
    for (const seq of [1, 2, 3]) {
      const step = decideInShadow(observed(null, seq), row(), current, policy);
      rules.push(step.decision.rule);
      current = step.entry;
      if (seq < 3) assert.equal(step.proposal, undefined);
      else assert.deepEqual(step.proposal, { rule: 'missing', before: RUNNING_ACTIVE, after: { powerState: PowerState.NOSTATE, vmState: VmState.ACTIVE } });
    }
    assert.deepEqual(rules, ['missing-grace', 'missing-grace', 'missing']);
    assert.equal(current?.missedReports, 3);
  });

  test('the cloud changed the row since the entry: the entry is void and the real row decides', () => {
    const changed = row({ powerState: PowerState.PAUSED });
    const step = decideInShadow(observed(PowerState.SHUTOFF, 2, cloud({ powerState: PowerState.PAUSED })), changed, entry(), SEED_POLICY);
    assert.equal(step.decision.rule, 'stopped');
    assert.deepEqual(step.proposal?.before, { powerState: PowerState.PAUSED, vmState: VmState.ACTIVE });
    assert.deepEqual(step.entry?.base, cloud({ powerState: PowerState.PAUSED }));
  });

  test('the cloud changed the row after the agent read it: changed-after-read, whatever the entry says', () => {
    const step = decideInShadow(observed(PowerState.SHUTOFF, 2, cloud({ powerState: PowerState.PAUSED })), row(), entry(), SEED_POLICY);
    assert.equal(step.decision.rule, 'changed-after-read');
    assert.equal(step.entry, undefined);
  });

  test('an operation of the cloud in progress voids the entry and is left alone', () => {
    const busy = row({ taskState: 'rebooting' });
    const step = decideInShadow(observed(PowerState.SHUTOFF, 2, cloud({ taskState: 'rebooting' })), busy, entry(), SEED_POLICY);
    assert.equal(step.decision.rule, 'task-in-progress');
    assert.equal(step.proposal, undefined);
  });

  test('a deleted row: nothing recorded', () => {
    const step = decideInShadow(observed(PowerState.SHUTOFF, 2), undefined, entry(), SEED_POLICY);
    assert.deepEqual([step.decision.rule, step.entry, step.proposal], ['deleted', undefined, undefined]);
  });
});

describe('shadowApplies and shadowAwaitsReport', () => {
  const cases: Array<{ name: string; entry: ShadowEntry | undefined; row: CloudState; applies: boolean; awaits: boolean }> = [
    { name: 'no entry', entry: undefined, row: cloud(), applies: false, awaits: false },
    { name: 'an entry that differs from the row it was derived from', entry: entry(), row: cloud(), applies: true, awaits: true },
    { name: 'an entry in agreement with its row', entry: entry({ state: RUNNING_ACTIVE }), row: cloud(), applies: true, awaits: false },
    { name: 'an entry in agreement, counting misses', entry: entry({ state: RUNNING_ACTIVE, missedReports: 1 }), row: cloud(), applies: true, awaits: true },
    { name: 'the cloud changed power_state', entry: entry(), row: cloud({ powerState: PowerState.PAUSED }), applies: false, awaits: false },
    { name: 'the cloud changed vm_state', entry: entry(), row: cloud({ vmState: VmState.STOPPED }), applies: false, awaits: false },
    { name: 'the cloud set task_state', entry: entry(), row: cloud({ taskState: 'powering-on' }), applies: false, awaits: false },
    { name: 'the row moved to another host', entry: entry(), row: cloud({ host: 'compute-2' }), applies: false, awaits: false },
  ];
  for (const c of cases) {
    test(c.name, () => {
      if (c.entry !== undefined) assert.equal(shadowApplies(c.entry, c.row), c.applies);
      assert.equal(shadowAwaitsReport(c.entry, c.row), c.awaits);
    });
  }
});
