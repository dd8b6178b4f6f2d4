import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { POWER_STATES, PowerState } from '../../../shared/power-state.ts';
import {
  COUNT_RULES,
  decide,
  nextSnapshot,
  RULE_REASONS,
  SKIP_RULES,
  type SyncPolicy,
  UPDATE_RULES,
  type Decision,
  type InstanceSnapshot,
  type ObservedState,
} from '../../../shared/sync-rules.ts';
import { VM_STATES, VmState } from '../../../shared/vm-state.ts';

const THIS_HOST = 'compute-1';
const OTHER_HOST = 'compute-2';
const OBSERVED_AT = new Date('2024-05-01T12:00:00.000Z');
const ONE_SECOND_MS = 1_000;

function observed(powerState: PowerState | null, overrides: Partial<ObservedState> = {}): ObservedState {
  return { host: THIS_HOST, powerState, observedAt: OBSERVED_AT, ...overrides };
}

function row(overrides: Partial<InstanceSnapshot> = {}): InstanceSnapshot {
  return {
    host: THIS_HOST,
    powerState: PowerState.RUNNING,
    vmState: VmState.ACTIVE,
    deleted: false,
    powerStateUpdatedAt: null,
    taskState: null,
    missedReports: 0,
    lastMissedAt: null,
    ...overrides,
  };
}

/**
 * The rules written out as plainly as possible, in the order the spec gives them.
 * Deliberately independent of decide(): no shared sets, no shared helpers.
 */
function oracle(obs: ObservedState, current: InstanceSnapshot | undefined, grace = 1): Decision {
  if (current === undefined) return { action: 'skip', rule: 'deleted' };
  if (current.deleted === true) return { action: 'skip', rule: 'deleted' };

  if (current.host !== obs.host) {
    if (obs.powerState === null) return { action: 'skip', rule: 'moved' };
    return { action: 'skip', rule: 'stale-host' };
  }

  if (current.taskState !== null) return { action: 'skip', rule: 'task-in-progress' };

  if (obs.powerState === 3 && (obs.reason === 'migrating' || obs.reason === 'starting up' || obs.reason === 'post-copy')) {
    return { action: 'skip', rule: 'in-transition' };
  }
  if (obs.powerState === 5 && obs.reason === 'migrated') return { action: 'skip', rule: 'in-transition' };

  if (current.powerStateUpdatedAt !== null) {
    if (obs.observedAt.getTime() <= current.powerStateUpdatedAt.getTime()) {
      return { action: 'skip', rule: 'stale-observation' };
    }
  }
  if (obs.powerState === null && current.lastMissedAt !== null) {
    if (obs.observedAt.getTime() <= current.lastMissedAt.getTime()) {
      return { action: 'skip', rule: 'stale-observation' };
    }
  }

  if (obs.powerState === null && current.vmState === 'migrating') {
    return { action: 'skip', rule: 'migrating-in' };
  }

  let newState: PowerState;
  if (obs.powerState === null) newState = 0;
  else newState = obs.powerState;

  if (newState === current.powerState) {
    if (obs.powerState !== null && current.missedReports > 0) return { action: 'count', rule: 'reappeared', missedReports: 0 };
    return { action: 'skip', rule: 'equal' };
  }

  if (obs.powerState === null) {
    if (current.missedReports + 1 < grace) {
      return { action: 'count', rule: 'missing-grace', missedReports: current.missedReports + 1 };
    }
    return { action: 'update', rule: 'missing', powerState: 0, vmState: current.vmState, missedReports: current.missedReports + 1 };
  }
  if ((newState === 5 || newState === 4 || newState === 6) && current.vmState === 'active') {
    return { action: 'update', rule: 'stopped', powerState: newState, vmState: 'shutoff', missedReports: 0 };
  }
  if (newState === 1 || newState === 2) {
    return { action: 'update', rule: 'running', powerState: newState, vmState: 'active', missedReports: 0 };
  }
  return { action: 'update', rule: 'power-only', powerState: newState, vmState: current.vmState, missedReports: 0 };
}

describe('decide: exhaustive cross product against the oracle', () => {
  const observedStates: (PowerState | null)[] = [...POWER_STATES, null];
  const raceCases = ['row-gone', 'soft-deleted', 'other-host', 'this-host'] as const;
  const stalenessCases = [
    { name: 'never updated', updatedAt: null },
    { name: 'updated before the observation', updatedAt: new Date(OBSERVED_AT.getTime() - ONE_SECOND_MS) },
    { name: 'updated at the observation', updatedAt: new Date(OBSERVED_AT.getTime()) },
    { name: 'updated after the observation', updatedAt: new Date(OBSERVED_AT.getTime() + ONE_SECOND_MS) },
  ] as const;
  const taskStates = [null, 'rebooting'] as const;
  const missHistories = [
    { name: 'never missed', missedReports: 0, lastMissedAt: null },
    { name: 'missed once, before the observation', missedReports: 1, lastMissedAt: new Date(OBSERVED_AT.getTime() - ONE_SECOND_MS) },
    { name: 'missed twice, last at the observation', missedReports: 2, lastMissedAt: new Date(OBSERVED_AT.getTime()) },
  ] as const;
  const policies: SyncPolicy[] = [{ missingGraceCycles: 1 }, { missingGraceCycles: 3 }];
  // None (the agent did not read it), a paused one's and a shut-off one's migration reasons.
  const reasons = [undefined, 'migrating', 'migrated'] as const;

  test('the model has the sizes the spec names', () => {
    assert.equal(POWER_STATES.length, 10);
    assert.equal(VM_STATES.length, 12);
  });

  test('every combination matches the oracle', () => {
    let checked = 0;
    const seenRules = new Set<string>();
    for (const observedPowerState of observedStates) {
      for (const vmState of VM_STATES) {
        for (const rowPowerState of POWER_STATES) {
          for (const race of raceCases) {
            for (const staleness of stalenessCases) {
             for (const taskState of taskStates) {
              for (const history of missHistories) {
               for (const policy of policies) {
                for (const reason of reasons) {
              const obs = observed(observedPowerState, reason === undefined ? {} : { reason });
              const current: InstanceSnapshot | undefined =
                race === 'row-gone'
                  ? undefined
                  : row({
                      host: race === 'other-host' ? OTHER_HOST : THIS_HOST,
                      deleted: race === 'soft-deleted',
                      powerState: rowPowerState,
                      vmState,
                      powerStateUpdatedAt: staleness.updatedAt,
                      taskState,
                      missedReports: history.missedReports,
                      lastMissedAt: history.lastMissedAt,
                    });
              const expected = oracle(obs, current, policy.missingGraceCycles);
              const actual = decide(obs, current, policy);
              if (JSON.stringify(actual) !== JSON.stringify(expected)) {
                assert.deepEqual(
                  actual,
                  expected,
                  `observed=${observedPowerState} reason=${reason} vmState=${vmState} rowPower=${rowPowerState} race=${race} staleness=${staleness.name} task=${taskState} misses=${history.name} grace=${policy.missingGraceCycles}`,
                );
              }
              seenRules.add(expected.rule);
              checked++;
                }
               }
              }
             }
            }
          }
        }
      }
    }
    // 11 observed × 12 vm states × 10 row power states × 4 race cases × 4 staleness cases
    //   × 2 task states × 3 miss histories × 2 grace policies × 3 reasons
    assert.equal(checked, 11 * 12 * 10 * 4 * 4 * 2 * 3 * 2 * 3);
    assert.equal(checked, 760_320);
    // The product reaches every rule, so no branch goes unchecked.
    assert.deepEqual([...seenRules].sort(), [...UPDATE_RULES, ...COUNT_RULES, ...SKIP_RULES].sort());
  });
});

describe('decide: named examples', () => {
  const cases: { name: string; observed: ObservedState; row: InstanceSnapshot | undefined; expected: Decision }[] = [
    // in-transition: libvirt's own passing states during a live migration
    {
      name: 'source paused (migrating) while the row still names it: skip, no PAUSED',
      observed: observed(PowerState.PAUSED, { reason: 'migrating' }),
      row: row({ vmState: VmState.MIGRATING }),
      expected: { action: 'skip', rule: 'in-transition' },
    },
    {
      name: 'destination paused (starting up) after the host switched: skip, no PAUSED',
      observed: observed(PowerState.PAUSED, { reason: 'starting up' }),
      row: row({ vmState: VmState.MIGRATING }),
      expected: { action: 'skip', rule: 'in-transition' },
    },
    {
      name: 'persistent source left shut off (migrated): skip, no SHUTOFF',
      observed: observed(PowerState.SHUTOFF, { reason: 'migrated' }),
      row: row(),
      expected: { action: 'skip', rule: 'in-transition' },
    },
    {
      name: 'running (migrated) on arrival is a real state',
      observed: observed(PowerState.RUNNING, { reason: 'migrated' }),
      row: row({ powerState: PowerState.PAUSED, vmState: VmState.MIGRATING }),
      expected: { action: 'update', rule: 'running', powerState: PowerState.RUNNING, vmState: VmState.ACTIVE, missedReports: 0 },
    },
    {
      name: 'paused by the user, reason read: the seed rule as ever',
      observed: observed(PowerState.PAUSED, { reason: 'user' }),
      row: row({ vmState: VmState.MIGRATING }),
      expected: { action: 'update', rule: 'power-only', powerState: PowerState.PAUSED, vmState: VmState.MIGRATING, missedReports: 0 },
    },
    // deleted
    {
      name: 'row gone: skip deleted, even when found running',
      observed: observed(PowerState.RUNNING),
      row: undefined,
      expected: { action: 'skip', rule: 'deleted' },
    },
    {
      name: 'soft-deleted row: skip deleted, even when not found',
      observed: observed(null),
      row: row({ deleted: true, powerState: PowerState.SHUTOFF }),
      expected: { action: 'skip', rule: 'deleted' },
    },
    {
      name: 'soft-deleted row on another host: deleted wins over moved',
      observed: observed(null),
      row: row({ deleted: true, host: OTHER_HOST }),
      expected: { action: 'skip', rule: 'deleted' },
    },
    // moved / stale-host
    {
      name: 'not found here, row now names another host: moved',
      observed: observed(null),
      row: row({ host: OTHER_HOST }),
      expected: { action: 'skip', rule: 'moved' },
    },
    {
      name: 'found here, row names another host: stale-host',
      observed: observed(PowerState.SHUTOFF),
      row: row({ host: OTHER_HOST }),
      expected: { action: 'skip', rule: 'stale-host' },
    },
    {
      name: 'host names compare exactly (no case folding)',
      observed: observed(PowerState.SHUTOFF, { host: 'Compute-1' }),
      row: row({ host: 'compute-1' }),
      expected: { action: 'skip', rule: 'stale-host' },
    },
    // stale-observation
    {
      name: 'observed before the row last changed: stale-observation',
      observed: observed(PowerState.SHUTOFF),
      row: row({ powerStateUpdatedAt: new Date(OBSERVED_AT.getTime() + 1) }),
      expected: { action: 'skip', rule: 'stale-observation' },
    },
    {
      name: 'observed at the very millisecond the row changed: stale-observation (duplicate delivery)',
      observed: observed(PowerState.SHUTOFF),
      row: row({ powerStateUpdatedAt: new Date(OBSERVED_AT.getTime()) }),
      expected: { action: 'skip', rule: 'stale-observation' },
    },
    {
      name: 'observed one millisecond after the row changed: applied',
      observed: observed(PowerState.SHUTOFF),
      row: row({ powerStateUpdatedAt: new Date(OBSERVED_AT.getTime() - 1) }),
      expected: { action: 'update', rule: 'stopped', powerState: PowerState.SHUTOFF, vmState: VmState.SHUTOFF, missedReports: 0 },
    },
    {
      name: 'stale-observation wins over migrating-in',
      observed: observed(null),
      row: row({ vmState: VmState.MIGRATING, powerStateUpdatedAt: OBSERVED_AT }),
      expected: { action: 'skip', rule: 'stale-observation' },
    },
    // migrating-in
    {
      name: 'not found, row on this host and migrating: migrating-in',
      observed: observed(null),
      row: row({ vmState: VmState.MIGRATING }),
      expected: { action: 'skip', rule: 'migrating-in' },
    },
    {
      name: 'found while migrating: not migrating-in, synced like any other',
      observed: observed(PowerState.PAUSED),
      row: row({ vmState: VmState.MIGRATING }),
      expected: { action: 'update', rule: 'power-only', powerState: PowerState.PAUSED, vmState: VmState.MIGRATING, missedReports: 0 },
    },
    // equal
    {
      name: 'hypervisor agrees: equal',
      observed: observed(PowerState.RUNNING),
      row: row({ powerState: PowerState.RUNNING, vmState: VmState.ACTIVE }),
      expected: { action: 'skip', rule: 'equal' },
    },
    {
      name: 'not found and row already NOSTATE: equal',
      observed: observed(null),
      row: row({ powerState: PowerState.NOSTATE, vmState: VmState.ERROR }),
      expected: { action: 'skip', rule: 'equal' },
    },
    {
      name: 'equal wins even when vm_state looks wrong (running but row stopped)',
      observed: observed(PowerState.RUNNING),
      row: row({ powerState: PowerState.RUNNING, vmState: VmState.STOPPED }),
      expected: { action: 'skip', rule: 'equal' },
    },
    // stopped
    {
      name: 'SHUTOFF while active: stopped',
      observed: observed(PowerState.SHUTOFF),
      row: row(),
      expected: { action: 'update', rule: 'stopped', powerState: PowerState.SHUTOFF, vmState: VmState.SHUTOFF, missedReports: 0 },
    },
    {
      name: 'SHUTDOWN while active: stopped',
      observed: observed(PowerState.SHUTDOWN),
      row: row(),
      expected: { action: 'update', rule: 'stopped', powerState: PowerState.SHUTDOWN, vmState: VmState.SHUTOFF, missedReports: 0 },
    },
    {
      name: 'CRASHED while active: stopped',
      observed: observed(PowerState.CRASHED),
      row: row(),
      expected: { action: 'update', rule: 'stopped', powerState: PowerState.CRASHED, vmState: VmState.SHUTOFF, missedReports: 0 },
    },
    {
      name: 'SHUTOFF while not active: power-only, vm_state kept',
      observed: observed(PowerState.SHUTOFF),
      row: row({ vmState: VmState.RESIZED }),
      expected: { action: 'update', rule: 'power-only', powerState: PowerState.SHUTOFF, vmState: VmState.RESIZED, missedReports: 0 },
    },
    // running
    {
      name: 'RUNNING while shutoff: running, vm_state active',
      observed: observed(PowerState.RUNNING),
      row: row({ powerState: PowerState.SHUTOFF, vmState: VmState.SHUTOFF }),
      expected: { action: 'update', rule: 'running', powerState: PowerState.RUNNING, vmState: VmState.ACTIVE, missedReports: 0 },
    },
    {
      name: 'BLOCKED while error: running, vm_state active',
      observed: observed(PowerState.BLOCKED),
      row: row({ powerState: PowerState.NOSTATE, vmState: VmState.ERROR }),
      expected: { action: 'update', rule: 'running', powerState: PowerState.BLOCKED, vmState: VmState.ACTIVE, missedReports: 0 },
    },
    // power-only / missing
    {
      name: 'PAUSED while active: power-only, vm_state kept',
      observed: observed(PowerState.PAUSED),
      row: row(),
      expected: { action: 'update', rule: 'power-only', powerState: PowerState.PAUSED, vmState: VmState.ACTIVE, missedReports: 0 },
    },
    {
      name: 'SUSPENDED while active: power-only',
      observed: observed(PowerState.SUSPENDED),
      row: row(),
      expected: { action: 'update', rule: 'power-only', powerState: PowerState.SUSPENDED, vmState: VmState.ACTIVE, missedReports: 0 },
    },
    {
      name: 'found in NOSTATE: power-only, not missing',
      observed: observed(PowerState.NOSTATE),
      row: row(),
      expected: { action: 'update', rule: 'power-only', powerState: PowerState.NOSTATE, vmState: VmState.ACTIVE, missedReports: 0 },
    },
    {
      name: 'not found, active row: missing, NOSTATE, vm_state kept (the seed leaves NOSTATE out of poweroff)',
      observed: observed(null),
      row: row(),
      expected: { action: 'update', rule: 'missing', powerState: PowerState.NOSTATE, vmState: VmState.ACTIVE, missedReports: 1 },
    },
    {
      name: 'not found, shutoff row: missing',
      observed: observed(null),
      row: row({ powerState: PowerState.SHUTOFF, vmState: VmState.SHUTOFF }),
      expected: { action: 'update', rule: 'missing', powerState: PowerState.NOSTATE, vmState: VmState.SHUTOFF, missedReports: 1 },
    },
  ];

  for (const c of cases) {
    test(c.name, () => {
      assert.deepEqual(decide(c.observed, c.row), c.expected);
    });
  }
});

describe('decide: the seed bug (stale vm_power_state after moved / migrating-in)', () => {
  test('a not-found observation after an update decision changes nothing for moved or migrating-in rows', () => {
    // The seed loop: instance A is found SHUTOFF and updated (vm_power_state = SHUTOFF);
    // instance B is not found and has moved (or is migrating in). The Python falls out of
    // the except-branch with vm_power_state still SHUTOFF and writes it onto B.
    const first = decide(observed(PowerState.SHUTOFF), row());
    assert.deepEqual(first, {
      action: 'update',
      rule: 'stopped',
      powerState: PowerState.SHUTOFF,
      vmState: VmState.SHUTOFF,
      missedReports: 0,
    });

    const movedRow = row({ host: OTHER_HOST });
    const migratingRow = row({ vmState: VmState.MIGRATING });
    assert.deepEqual(decide(observed(null), movedRow), { action: 'skip', rule: 'moved' });
    assert.deepEqual(decide(observed(null), migratingRow), { action: 'skip', rule: 'migrating-in' });

    // Stateless in the other order too, and the inputs are left untouched.
    assert.deepEqual(decide(observed(PowerState.SHUTOFF), row()), first);
    assert.deepEqual(movedRow, row({ host: OTHER_HOST }));
    assert.deepEqual(migratingRow, row({ vmState: VmState.MIGRATING }));
  });
});

describe('RULE_REASONS', () => {
  test('every rule has a non-empty reason', () => {
    for (const rule of [...UPDATE_RULES, ...SKIP_RULES]) {
      assert.ok(RULE_REASONS[rule].length > 0, rule);
    }
    assert.equal(Object.keys(RULE_REASONS).length, UPDATE_RULES.length + COUNT_RULES.length + SKIP_RULES.length);
  });
});

describe('decide: task in progress and missed-report grace', () => {
  const grace3: SyncPolicy = { missingGraceCycles: 3 };

  test('a row with task_state set is never changed, whatever the hypervisor says', () => {
    for (const state of [...POWER_STATES, null]) {
      assert.deepEqual(decide(observed(state), row({ taskState: 'rebooting' })), { action: 'skip', rule: 'task-in-progress' });
    }
  });

  test('grace 3: the first two misses are counted, the third sets NOSTATE', () => {
    let current: InstanceSnapshot | undefined = row();
    const rules: string[] = [];
    for (let cycle = 1; cycle <= 3; cycle++) {
      const at = new Date(OBSERVED_AT.getTime() + cycle * ONE_SECOND_MS);
      const decision = decide(observed(null, { observedAt: at }), current, grace3);
      rules.push(decision.rule);
      current = nextSnapshot(current, decision, at) ?? current;
    }
    assert.deepEqual(rules, ['missing-grace', 'missing-grace', 'missing']);
    assert.equal(current?.powerState, PowerState.NOSTATE);
    assert.equal(current?.missedReports, 3);
  });

  test('a redelivered miss is not counted twice', () => {
    const first = decide(observed(null), row(), grace3);
    const after = nextSnapshot(row(), first, OBSERVED_AT);
    assert.deepEqual(first, { action: 'count', rule: 'missing-grace', missedReports: 1 });
    assert.deepEqual(decide(observed(null), after, grace3), { action: 'skip', rule: 'stale-observation' });
  });

  test('found again in the same state: the count starts over without a state change', () => {
    const counted = row({ missedReports: 2, lastMissedAt: new Date(OBSERVED_AT.getTime() - ONE_SECOND_MS) });
    const decision = decide(observed(PowerState.RUNNING), counted, grace3);
    assert.deepEqual(decision, { action: 'count', rule: 'reappeared', missedReports: 0 });
    const next = nextSnapshot(counted, decision, OBSERVED_AT);
    assert.equal(next?.missedReports, 0);
    assert.equal(next?.powerState, PowerState.RUNNING);
    assert.equal(next?.powerStateUpdatedAt, OBSERVED_AT, 'the state is confirmed as of the observation');
  });

  test('nextSnapshot writes nothing for a skip and stamps power_state_updated_at on an update', () => {
    assert.equal(nextSnapshot(row(), { action: 'skip', rule: 'moved' }, OBSERVED_AT), undefined);
    assert.equal(nextSnapshot(undefined, { action: 'skip', rule: 'deleted' }, OBSERVED_AT), undefined);
    const decision = decide(observed(PowerState.SHUTOFF), row());
    assert.deepEqual(nextSnapshot(row(), decision, OBSERVED_AT), {
      ...row(),
      powerState: PowerState.SHUTOFF,
      vmState: VmState.SHUTOFF,
      powerStateUpdatedAt: OBSERVED_AT,
    });
  });

  test('an equal state is confirmed: an older observation arriving later is then stale', () => {
    const nostate = row({ powerState: PowerState.NOSTATE, powerStateUpdatedAt: new Date(OBSERVED_AT.getTime() - 10 * ONE_SECOND_MS) });
    const confirmed = nextSnapshot(nostate, decide(observed(null), nostate), OBSERVED_AT);
    assert.deepEqual(confirmed, { ...nostate, powerStateUpdatedAt: OBSERVED_AT });
    const late = observed(PowerState.PAUSED, { observedAt: new Date(OBSERVED_AT.getTime() - 5 * ONE_SECOND_MS) });
    assert.deepEqual(decide(late, confirmed), { action: 'skip', rule: 'stale-observation' });
  });
});
