import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { needsStateReason, stateReasonFields, stateReasonName } from '../../../../services/sync-agent/state-reason.ts';
import { PowerState } from '../../../../shared/power-state.ts';
import { VmState } from '../../../../shared/vm-state.ts';

/** libvirt's reasons per state: its enum, each constant with its number and the word `virsh domstate --reason` prints. */
const REASONS: ReadonlyArray<{ state: PowerState; enumName: string; reasons: ReadonlyArray<[constant: string, reason: number, word: string]> }> = [
  { state: PowerState.NOSTATE, enumName: 'virDomainNostateReason', reasons: [['VIR_DOMAIN_NOSTATE_UNKNOWN', 0, 'unknown']] },
  {
    state: PowerState.RUNNING,
    enumName: 'virDomainRunningReason',
    reasons: [
      ['VIR_DOMAIN_RUNNING_UNKNOWN', 0, 'unknown'],
      ['VIR_DOMAIN_RUNNING_BOOTED', 1, 'booted'],
      ['VIR_DOMAIN_RUNNING_MIGRATED', 2, 'migrated'],
      ['VIR_DOMAIN_RUNNING_RESTORED', 3, 'restored'],
      ['VIR_DOMAIN_RUNNING_FROM_SNAPSHOT', 4, 'from snapshot'],
      ['VIR_DOMAIN_RUNNING_UNPAUSED', 5, 'unpaused'],
      ['VIR_DOMAIN_RUNNING_MIGRATION_CANCELED', 6, 'migration canceled'],
      ['VIR_DOMAIN_RUNNING_SAVE_CANCELED', 7, 'save canceled'],
      ['VIR_DOMAIN_RUNNING_WAKEUP', 8, 'event wakeup'],
      ['VIR_DOMAIN_RUNNING_CRASHED', 9, 'crashed'],
      ['VIR_DOMAIN_RUNNING_POSTCOPY', 10, 'post-copy'],
      ['VIR_DOMAIN_RUNNING_POSTCOPY_FAILED', 11, 'post-copy failed'],
    ],
  },
  { state: PowerState.BLOCKED, enumName: 'virDomainBlockedReason', reasons: [['VIR_DOMAIN_BLOCKED_UNKNOWN', 0, 'unknown']] },
  {
    state: PowerState.PAUSED,
    enumName: 'virDomainPausedReason',
    reasons: [
      ['VIR_DOMAIN_PAUSED_UNKNOWN', 0, 'unknown'],
      ['VIR_DOMAIN_PAUSED_USER', 1, 'user'],
      ['VIR_DOMAIN_PAUSED_MIGRATION', 2, 'migrating'],
      ['VIR_DOMAIN_PAUSED_SAVE', 3, 'saving'],
      ['VIR_DOMAIN_PAUSED_DUMP', 4, 'dumping'],
      ['VIR_DOMAIN_PAUSED_IOERROR', 5, 'I/O error'],
      ['VIR_DOMAIN_PAUSED_WATCHDOG', 6, 'watchdog'],
      ['VIR_DOMAIN_PAUSED_FROM_SNAPSHOT', 7, 'from snapshot'],
      ['VIR_DOMAIN_PAUSED_SHUTTING_DOWN', 8, 'shutting down'],
      ['VIR_DOMAIN_PAUSED_SNAPSHOT', 9, 'creating snapshot'],
      ['VIR_DOMAIN_PAUSED_CRASHED', 10, 'crashed'],
      ['VIR_DOMAIN_PAUSED_STARTING_UP', 11, 'starting up'],
      ['VIR_DOMAIN_PAUSED_POSTCOPY', 12, 'post-copy'],
      ['VIR_DOMAIN_PAUSED_POSTCOPY_FAILED', 13, 'post-copy failed'],
      ['VIR_DOMAIN_PAUSED_API_ERROR', 14, 'api error'],
    ],
  },
  { state: PowerState.SHUTDOWN, enumName: 'virDomainShutdownReason', reasons: [['VIR_DOMAIN_SHUTDOWN_UNKNOWN', 0, 'unknown'], ['VIR_DOMAIN_SHUTDOWN_USER', 1, 'user']] },
  {
    state: PowerState.SHUTOFF,
    enumName: 'virDomainShutoffReason',
    reasons: [
      ['VIR_DOMAIN_SHUTOFF_UNKNOWN', 0, 'unknown'],
      ['VIR_DOMAIN_SHUTOFF_SHUTDOWN', 1, 'shutdown'],
      ['VIR_DOMAIN_SHUTOFF_DESTROYED', 2, 'destroyed'],
      ['VIR_DOMAIN_SHUTOFF_CRASHED', 3, 'crashed'],
      ['VIR_DOMAIN_SHUTOFF_MIGRATED', 4, 'migrated'],
      ['VIR_DOMAIN_SHUTOFF_SAVED', 5, 'saved'],
      ['VIR_DOMAIN_SHUTOFF_FAILED', 6, 'failed'],
      ['VIR_DOMAIN_SHUTOFF_FROM_SNAPSHOT', 7, 'from snapshot'],
      ['VIR_DOMAIN_SHUTOFF_DAEMON', 8, 'daemon'],
    ],
  },
  { state: PowerState.CRASHED, enumName: 'virDomainCrashedReason', reasons: [['VIR_DOMAIN_CRASHED_UNKNOWN', 0, 'unknown'], ['VIR_DOMAIN_CRASHED_PANICKED', 1, 'panicked']] },
  { state: PowerState.SUSPENDED, enumName: 'virDomainPMSuspendedReason', reasons: [['VIR_DOMAIN_PMSUSPENDED_UNKNOWN', 0, 'unknown']] },
];

describe('stateReasonName: libvirt reason numbers in virsh words', () => {
  for (const { state, reasons } of REASONS) {
    for (const [constant, reason, word] of reasons) {
      test(`${constant} (${reason}) → ${word}`, () => {
        assert.equal(stateReasonName(state, reason), word);
      });
    }
  }

  test('a reason beyond the table (a newer libvirt), a negative one, and a state libvirt does not have are unknown, as virsh prints them', () => {
    assert.equal(stateReasonName(PowerState.SHUTOFF, 99), 'unknown');
    assert.equal(stateReasonName(PowerState.PAUSED, -1), 'unknown');
    assert.equal(stateReasonName(PowerState.BUILDING, 0), 'unknown');
  });

  // The libvirt this agent is built against (its headers are a build dependency of the addon).
  test("the numbers are libvirt-domain.h's, and the table covers every reason it declares", () => {
    const header = readFileSync('/usr/include/libvirt/libvirt-domain.h', 'utf8');
    for (const { enumName, reasons } of REASONS) {
      const body = new RegExp(`typedef enum \\{([^}]*)\\} ${enumName};`).exec(header)?.[1];
      assert.ok(body !== undefined, `${enumName} in the header`);
      const declared = [...body.matchAll(/^\s*(VIR_DOMAIN_\w+)\s*=\s*(\d+)/gm)].map(([, constant = '', reason]) => [constant, Number(reason)] as const);
      assert.ok(declared.length > 0, `${enumName} declares reasons`);
      // Reasons newer than the installed libvirt stay in the table: a newer daemon can send them.
      const tabled = new Map(reasons.map(([constant, reason]) => [constant, reason]));
      for (const [constant, reason] of declared) assert.equal(tabled.get(constant), reason, `${constant} = ${reason}`);
    }
  });
});

test('needsStateReason: only a paused or shut-off domain whose row is migrating', () => {
  assert.equal(needsStateReason({ vmState: VmState.MIGRATING }, PowerState.PAUSED), true);
  assert.equal(needsStateReason({ vmState: VmState.MIGRATING }, PowerState.SHUTOFF), true);
  assert.equal(needsStateReason({ vmState: VmState.MIGRATING }, PowerState.RUNNING), false);
  assert.equal(needsStateReason({ vmState: VmState.MIGRATING }, PowerState.CRASHED), false);
  assert.equal(needsStateReason({ vmState: VmState.ACTIVE }, PowerState.PAUSED), false);
});

test('stateReasonFields: the reason in words where the writer needs it, nothing elsewhere', () => {
  const migrating = { vmState: VmState.MIGRATING };
  assert.deepEqual(stateReasonFields(migrating, PowerState.PAUSED, 2), { reason: 'migrating' });
  assert.deepEqual(stateReasonFields(migrating, PowerState.PAUSED, 11), { reason: 'starting up' });
  assert.deepEqual(stateReasonFields(migrating, PowerState.SHUTOFF, 4), { reason: 'migrated' });
  assert.deepEqual(stateReasonFields(migrating, PowerState.PAUSED, 1), { reason: 'user' });
  assert.deepEqual(stateReasonFields(migrating, PowerState.RUNNING, 2), {});
  assert.deepEqual(stateReasonFields({ vmState: VmState.ACTIVE }, PowerState.PAUSED, 2), {});
  // Missing from the hypervisor: no state, no reason.
  assert.deepEqual(stateReasonFields(migrating, null, undefined), {});
});
