import assert from 'node:assert/strict';
import { test } from 'node:test';
import { needsStateReason, parseDomstate } from '../../../../services/sync-agent/state-reason.ts';
import { PowerState } from '../../../../shared/power-state.ts';
import { VmState } from '../../../../shared/vm-state.ts';

test('parseDomstate splits virsh domstate --reason into state and reason', () => {
  const cases: Array<[string, { state: string; reason: string }]> = [
    ['paused (migrating)\n\n', { state: 'paused', reason: 'migrating' }],
    ['paused (starting up)\n', { state: 'paused', reason: 'starting up' }],
    ['shut off (migrated)\n', { state: 'shut off', reason: 'migrated' }],
    ['paused (I/O error)\n', { state: 'paused', reason: 'I/O error' }],
    ['running (booted)', { state: 'running', reason: 'booted' }],
    ['running\n', { state: 'running', reason: '' }],
    ['', { state: '', reason: '' }],
  ];
  for (const [output, expected] of cases) assert.deepEqual(parseDomstate(output), expected, JSON.stringify(output));
});

test('needsStateReason: only a paused or shut-off domain whose row is migrating', () => {
  assert.equal(needsStateReason({ vmState: VmState.MIGRATING }, PowerState.PAUSED), true);
  assert.equal(needsStateReason({ vmState: VmState.MIGRATING }, PowerState.SHUTOFF), true);
  assert.equal(needsStateReason({ vmState: VmState.MIGRATING }, PowerState.RUNNING), false);
  assert.equal(needsStateReason({ vmState: VmState.MIGRATING }, PowerState.CRASHED), false);
  assert.equal(needsStateReason({ vmState: VmState.ACTIVE }, PowerState.PAUSED), false);
});
