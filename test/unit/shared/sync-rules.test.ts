import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { POWER_STATES, PowerState } from '../../../shared/power-state.ts';
import {
  type CloudState,
  COUNT_RULES,
  decide as decideRule,
  decideUnreachableHost,
  type LookOrder,
  nextSnapshot as nextSnapshotRule,
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
const LOOK: LookOrder = { epoch: 2, seq: 10 };

/** Stands for "the agent read the row exactly as it is now": most cases are about something else. */
const AS_READ: CloudState = Object.freeze({ host: '(as read)', powerState: PowerState.NOSTATE, vmState: VmState.ACTIVE, taskState: null, deleted: false });

function observed(powerState: PowerState | null, overrides: Partial<ObservedState> = {}): ObservedState {
  return { host: THIS_HOST, powerState, look: LOOK, expected: AS_READ, ...overrides };
}

function cloudStateOf(current: InstanceSnapshot): CloudState {
  return { host: current.host, powerState: current.powerState, vmState: current.vmState, taskState: current.taskState, deleted: current.deleted };
}

function asRead(obs: ObservedState, current: InstanceSnapshot | undefined): ObservedState {
  if (obs.expected !== AS_READ) return obs;
  return { ...obs, expected: current === undefined ? { ...AS_READ, host: obs.host } : cloudStateOf(current) };
}

function decide(obs: ObservedState, current: InstanceSnapshot | undefined, policy?: SyncPolicy): Decision {
  return decideRule(asRead(obs, current), current, policy);
}

function nextSnapshot(current: InstanceSnapshot | undefined, decision: Decision, obs: ObservedState): InstanceSnapshot | undefined {
  return nextSnapshotRule(current, decision, asRead(obs, current));
}

function row(overrides: Partial<InstanceSnapshot> = {}): InstanceSnapshot {
  return {
    host: THIS_HOST,
    powerState: PowerState.RUNNING,
    vmState: VmState.ACTIVE,
    deleted: false,
    taskState: null,
    missedReports: 0,
    lastLook: null,
    written: null,
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

  // The cloud's write since the agent read the row wins; virtsync's own last write does not count as the cloud's.
  const read = obs.expected;
  if (read.host !== current.host || read.taskState !== current.taskState || read.deleted !== current.deleted) {
    return { action: 'skip', rule: 'changed-after-read' };
  }
  if (read.powerState !== current.powerState || read.vmState !== current.vmState) {
    const virtsyncWroteIt =
      current.written !== null && current.written.powerState === current.powerState && current.written.vmState === current.vmState;
    if (!virtsyncWroteIt) return { action: 'skip', rule: 'changed-after-read' };
  }

  if (current.lastLook !== null && current.lastLook.host === obs.host) {
    if (obs.look.epoch < current.lastLook.epoch) return { action: 'skip', rule: 'stale-observation' };
    if (obs.look.epoch === current.lastLook.epoch && obs.look.seq <= current.lastLook.seq) {
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
  const lookCases = [
    { name: 'first look', lastLook: null },
    { name: 'newer than the last look', lastLook: { host: THIS_HOST, epoch: 2, seq: 9 } },
    { name: 'the last look again (redelivery)', lastLook: { host: THIS_HOST, epoch: 2, seq: 10 } },
    { name: 'older than the last look (a restarted agent looked since)', lastLook: { host: THIS_HOST, epoch: 3, seq: 1 } },
    { name: 'last look by another host', lastLook: { host: OTHER_HOST, epoch: 9, seq: 99 } },
  ] as const;
  const readCases = ['as read', 'cloud changed power state since', 'virtsync wrote since', 'cloud set a task since'] as const;
  const taskStates = [null, 'rebooting'] as const;
  const missHistories = [0, 1, 2] as const;
  const policies: SyncPolicy[] = [{ missingGraceCycles: 1 }, { missingGraceCycles: 3 }];

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
            for (const look of lookCases) {
              for (const read of readCases) {
                for (const taskState of taskStates) {
                  for (const missedReports of missHistories) {
                    for (const policy of policies) {
                      const current: InstanceSnapshot | undefined =
                        race === 'row-gone'
                          ? undefined
                          : row({
                              host: race === 'other-host' ? OTHER_HOST : THIS_HOST,
                              deleted: race === 'soft-deleted',
                              powerState: rowPowerState,
                              vmState,
                              taskState,
                              missedReports,
                              lastLook: look.lastLook,
                              written: read === 'virtsync wrote since' ? { powerState: rowPowerState, vmState } : null,
                            });
                      const otherPowerState = POWER_STATES[(rowPowerState + 1) % POWER_STATES.length] ?? PowerState.NOSTATE;
                      const expectedRow: CloudState = {
                        host: THIS_HOST,
                        powerState: read === 'as read' || read === 'cloud set a task since' ? rowPowerState : otherPowerState,
                        vmState,
                        taskState: read === 'cloud set a task since' ? (taskState === null ? 'spawning' : null) : taskState,
                        deleted: false,
                      };
                      const obs = observed(observedPowerState, { expected: expectedRow });
                      const expected = oracle(obs, current, policy.missingGraceCycles);
                      const actual = decideRule(obs, current, policy);
                      if (JSON.stringify(actual) !== JSON.stringify(expected)) {
                        assert.deepEqual(
                          actual,
                          expected,
                          `observed=${observedPowerState} vmState=${vmState} rowPower=${rowPowerState} race=${race} look=${look.name} read=${read} task=${taskState} misses=${missedReports} grace=${policy.missingGraceCycles}`,
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
    // 11 observed × 12 vm states × 10 row power states × 4 race cases × 5 look cases
    //   × 4 read cases × 2 task states × 3 miss histories × 2 grace policies
    assert.equal(checked, 11 * 12 * 10 * 4 * 5 * 4 * 2 * 3 * 2);
    // The product reaches every rule decide() can return, so no branch goes unchecked
    // (legacy-contract is the writer's, for observations decide() cannot take).
    // in-transition needs libvirt's reason: the next product covers it.
    // host-unreachable is decideUnreachableHost's (below), not an observation's.
    const withoutReason = [...UPDATE_RULES, ...COUNT_RULES, ...SKIP_RULES].filter((rule) => rule !== 'legacy-contract' && rule !== 'in-transition' && rule !== 'host-unreachable');
    assert.deepEqual([...seenRules].sort(), withoutReason.sort());
  });

  test('every combination with libvirt\'s reason matches the oracle', () => {
    const reasons = [undefined, 'migrating', 'starting up', 'post-copy', 'migrated', 'user', 'booted'] as const;
    let checked = 0;
    const seenRules = new Set<string>();
    for (const observedPowerState of observedStates) {
      for (const reason of reasons) {
        for (const vmState of VM_STATES) {
          for (const rowPowerState of POWER_STATES) {
            for (const race of raceCases) {
              for (const taskState of taskStates) {
                const current: InstanceSnapshot | undefined =
                  race === 'row-gone'
                    ? undefined
                    : row({ host: race === 'other-host' ? OTHER_HOST : THIS_HOST, deleted: race === 'soft-deleted', powerState: rowPowerState, vmState, taskState });
                const obs = observed(observedPowerState, reason === undefined ? {} : { reason });
                const expected = oracle(asRead(obs, current), current);
                const actual = decide(obs, current);
                if (JSON.stringify(actual) !== JSON.stringify(expected)) {
                  assert.deepEqual(actual, expected, `observed=${observedPowerState} reason=${reason} vmState=${vmState} rowPower=${rowPowerState} race=${race} task=${taskState}`);
                }
                seenRules.add(expected.rule);
                checked++;
              }
            }
          }
        }
      }
    }
    assert.equal(checked, 11 * 7 * 12 * 10 * 4 * 2);
    assert.ok(seenRules.has('in-transition'));
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
    // changed after read / stale-observation
    {
      name: 'the cloud changed the power state after the agent read the row: changed-after-read',
      observed: observed(PowerState.SHUTOFF, { expected: { host: THIS_HOST, powerState: PowerState.PAUSED, vmState: VmState.ACTIVE, taskState: null, deleted: false } }),
      row: row(),
      expected: { action: 'skip', rule: 'changed-after-read' },
    },
    {
      name: 'the cloud finished an operation after the agent read the row: changed-after-read',
      observed: observed(PowerState.SHUTOFF, { expected: { host: THIS_HOST, powerState: PowerState.RUNNING, vmState: VmState.ACTIVE, taskState: 'rebooting', deleted: false } }),
      row: row(),
      expected: { action: 'skip', rule: 'changed-after-read' },
    },
    {
      name: 'virtsync itself changed the row after the read, and this look is newer: applied',
      observed: observed(PowerState.SHUTOFF, { expected: { host: THIS_HOST, powerState: PowerState.RUNNING, vmState: VmState.ACTIVE, taskState: null, deleted: false } }),
      row: row({ powerState: PowerState.PAUSED, written: { powerState: PowerState.PAUSED, vmState: VmState.ACTIVE }, lastLook: { host: THIS_HOST, epoch: 2, seq: 9 } }),
      expected: { action: 'update', rule: 'stopped', powerState: PowerState.SHUTOFF, vmState: VmState.SHUTOFF, missedReports: 0 },
    },
    {
      name: 'an equal or older look of the same host already decided: stale-observation',
      observed: observed(PowerState.SHUTOFF),
      row: row({ lastLook: { host: THIS_HOST, ...LOOK } }),
      expected: { action: 'skip', rule: 'stale-observation' },
    },
    {
      name: 'a look of a restarted agent (higher epoch) is newer whatever its sequence',
      observed: observed(PowerState.SHUTOFF, { look: { epoch: 3, seq: 1 } }),
      row: row({ lastLook: { host: THIS_HOST, epoch: 2, seq: 5_000 } }),
      expected: { action: 'update', rule: 'stopped', powerState: PowerState.SHUTOFF, vmState: VmState.SHUTOFF, missedReports: 0 },
    },
    {
      name: 'stale-observation wins over migrating-in',
      observed: observed(null),
      row: row({ vmState: VmState.MIGRATING, lastLook: { host: THIS_HOST, ...LOOK } }),
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
    for (let seq = 1; seq <= 3; seq++) {
      const look = observed(null, { look: { epoch: 1, seq } });
      const decision = decide(look, current, grace3);
      rules.push(decision.rule);
      current = nextSnapshot(current, decision, look) ?? current;
    }
    assert.deepEqual(rules, ['missing-grace', 'missing-grace', 'missing']);
    assert.equal(current?.powerState, PowerState.NOSTATE);
    assert.equal(current?.missedReports, 3);
  });

  test('a redelivered miss is not counted twice', () => {
    const first = decide(observed(null), row(), grace3);
    const after = nextSnapshot(row(), first, observed(null));
    assert.deepEqual(first, { action: 'count', rule: 'missing-grace', missedReports: 1 });
    assert.deepEqual(decide(observed(null), after, grace3), { action: 'skip', rule: 'stale-observation' });
  });

  test('found again in the same state: the count starts over without a state change', () => {
    const counted = row({ missedReports: 2, lastLook: { host: THIS_HOST, epoch: 2, seq: 9 } });
    const decision = decide(observed(PowerState.RUNNING), counted, grace3);
    assert.deepEqual(decision, { action: 'count', rule: 'reappeared', missedReports: 0 });
    const next = nextSnapshot(counted, decision, observed(PowerState.RUNNING));
    assert.equal(next?.missedReports, 0);
    assert.equal(next?.powerState, PowerState.RUNNING);
    assert.deepEqual(next?.lastLook, { host: THIS_HOST, ...LOOK }, 'the look is recorded');
  });

  test('nextSnapshot writes nothing for a skip, and records the look and what virtsync wrote on an update', () => {
    assert.equal(nextSnapshot(row(), { action: 'skip', rule: 'moved' }, observed(null)), undefined);
    assert.equal(nextSnapshot(undefined, { action: 'skip', rule: 'deleted' }, observed(null)), undefined);
    const decision = decide(observed(PowerState.SHUTOFF), row());
    assert.deepEqual(nextSnapshot(row(), decision, observed(PowerState.SHUTOFF)), {
      ...row(),
      powerState: PowerState.SHUTOFF,
      vmState: VmState.SHUTOFF,
      lastLook: { host: THIS_HOST, ...LOOK },
      written: { powerState: PowerState.SHUTOFF, vmState: VmState.SHUTOFF },
    });
  });

  test('an equal state is confirmed: an older look arriving later is then stale', () => {
    const nostate = row({ powerState: PowerState.NOSTATE });
    const confirmed = nextSnapshot(nostate, decide(observed(null), nostate), observed(null));
    assert.deepEqual(confirmed, { ...nostate, lastLook: { host: THIS_HOST, ...LOOK } });
    const late = observed(PowerState.PAUSED, { look: { epoch: LOOK.epoch, seq: LOOK.seq - 1 } });
    assert.deepEqual(decide(late, confirmed), { action: 'skip', rule: 'stale-observation' });
  });

  test('the newest look wins whatever the arrival order (tick at t0, event at t1)', () => {
    const tick = observed(PowerState.PAUSED, { look: { epoch: 1, seq: 1 } });
    const event = observed(PowerState.SHUTOFF, { look: { epoch: 1, seq: 2 } });
    for (const order of [[tick, event], [event, tick]]) {
      let current: InstanceSnapshot | undefined = row();
      // Both agents' reads saw the row as it was before either was applied.
      const readBefore = cloudStateOf(row());
      for (const look of order) {
        const withRead = { ...look, expected: readBefore };
        current = nextSnapshotRule(current, decideRule(withRead, current), withRead) ?? current;
      }
      assert.equal(current?.powerState, PowerState.SHUTOFF);
    }
  });

  test('a cloud save that changes no state column does not make an observation stale', () => {
    const read = cloudStateOf(row());
    assert.deepEqual(decideRule(observed(PowerState.SHUTOFF, { expected: read }), row()), {
      action: 'update',
      rule: 'stopped',
      powerState: PowerState.SHUTOFF,
      vmState: VmState.SHUTOFF,
      missedReports: 0,
    });
  });
});

describe('an unreachable host\'s instances (UNREACHABLE_HOST_POLICY=nostate)', () => {
  test('every row state: NOSTATE unless the row is gone, elsewhere, busy, migrating or NOSTATE already', () => {
    let checked = 0;
    for (const vmState of VM_STATES) {
      for (const powerState of POWER_STATES) {
        for (const taskState of [null, 'rebooting']) {
          for (const [place, current] of [
            ['here', row({ vmState, powerState, taskState })],
            ['elsewhere', row({ vmState, powerState, taskState, host: OTHER_HOST })],
            ['soft-deleted', row({ vmState, powerState, taskState, deleted: true })],
            ['gone', undefined],
          ] as const) {
            const expected: Decision =
              current === undefined || current.deleted
                ? { action: 'skip', rule: 'deleted' }
                : place === 'elsewhere'
                  ? { action: 'skip', rule: 'moved' }
                  : taskState !== null
                    ? { action: 'skip', rule: 'task-in-progress' }
                    : vmState === VmState.MIGRATING
                      ? { action: 'skip', rule: 'migrating-in' }
                      : powerState === PowerState.NOSTATE
                        ? { action: 'skip', rule: 'equal' }
                        : { action: 'update', rule: 'host-unreachable', powerState: PowerState.NOSTATE, vmState, missedReports: 0 };
            assert.deepEqual(decideUnreachableHost(current, THIS_HOST), expected, `${place} ${vmState} ${powerState} ${taskState}`);
            checked++;
          }
        }
      }
    }
    assert.equal(checked, VM_STATES.length * POWER_STATES.length * 2 * 4);
  });

  test('the vm_state and the missed-report count are kept', () => {
    assert.deepEqual(decideUnreachableHost(row({ vmState: VmState.SHUTOFF, powerState: PowerState.SHUTOFF, missedReports: 2 }), THIS_HOST), {
      action: 'update',
      rule: 'host-unreachable',
      powerState: PowerState.NOSTATE,
      vmState: VmState.SHUTOFF,
      missedReports: 2,
    });
  });
});
