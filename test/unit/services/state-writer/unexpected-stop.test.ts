import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PowerState } from '../../../../shared/power-state.ts';
import type { UpdateRule } from '../../../../shared/sync-rules.ts';
import { VmState } from '../../../../shared/vm-state.ts';
import { isUnexpectedStop } from '../../../../services/state-writer/unexpected-stop.ts';

const cases: Array<{ rule: UpdateRule; before: PowerState; after: PowerState; unexpected: boolean; why: string }> = [
  { rule: 'stopped', before: PowerState.RUNNING, after: PowerState.SHUTOFF, unexpected: true, why: 'running instance found shut off' },
  { rule: 'stopped', before: PowerState.RUNNING, after: PowerState.CRASHED, unexpected: true, why: 'running instance found crashed' },
  { rule: 'stopped', before: PowerState.RUNNING, after: PowerState.SHUTDOWN, unexpected: false, why: 'still shutting down' },
  { rule: 'stopped', before: PowerState.PAUSED, after: PowerState.SHUTOFF, unexpected: false, why: 'it was not running' },
  { rule: 'power-only', before: PowerState.RUNNING, after: PowerState.SHUTOFF, unexpected: false, why: 'the cloud did not think it ACTIVE' },
  { rule: 'missing', before: PowerState.RUNNING, after: PowerState.NOSTATE, unexpected: false, why: 'gone is not stopped' },
  { rule: 'running', before: PowerState.SHUTOFF, after: PowerState.RUNNING, unexpected: false, why: 'started' },
];

for (const c of cases) {
  test(`${c.rule} ${c.before} → ${c.after}: ${c.unexpected ? 'unexpected stop' : 'not one'} (${c.why})`, () => {
    const change = { rule: c.rule, before: { powerState: c.before, vmState: VmState.ACTIVE }, after: { powerState: c.after, vmState: VmState.SHUTOFF } };
    assert.equal(isUnexpectedStop(change), c.unexpected);
  });
}
