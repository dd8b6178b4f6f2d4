/**
 * When the state-filtered listings can stand for the host's domain states: each UUID once,
 * as many as the unfiltered listing counted. Every way a domain changing state between the
 * listings shows up must send the reader back to reading domains one by one.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { collectStates, type ListedDomain, statesFromLists } from '../../../../services/sync-agent/domain-states.ts';
import { PowerState } from '../../../../shared/power-state.ts';

const a: ListedDomain = { uuid: 'aaaaaaaa-0000-4000-8000-000000000001', state: PowerState.RUNNING };
const b: ListedDomain = { uuid: 'bbbbbbbb-0000-4000-8000-000000000002', state: PowerState.SHUTOFF };
const c: ListedDomain = { uuid: 'cccccccc-0000-4000-8000-000000000003', state: 'unreadable' };

describe('statesFromLists', () => {
  test('lists that hold every listed domain once are the states, unreadable ones apart', () => {
    const result = statesFromLists(3, [a, b, c]);
    assert.deepEqual(result, {
      states: new Map([
        [a.uuid, PowerState.RUNNING],
        [b.uuid, PowerState.SHUTOFF],
      ]),
      unreadable: new Set([c.uuid]),
    });
  });

  test('an empty host is consistent', () => {
    assert.deepEqual(statesFromLists(0, []), { states: new Map(), unreadable: new Set() });
  });

  test('a domain in no list (it left one list before it was read, joined another already read) is rejected', () => {
    assert.equal(statesFromLists(3, [a, b]), undefined);
  });

  test('a domain in two lists (it moved the other way) is rejected, whatever states the lists gave it', () => {
    assert.equal(statesFromLists(3, [a, b, { ...b, state: PowerState.RUNNING }]), undefined);
    assert.equal(statesFromLists(3, [a, b, { ...b, state: 'unreadable' }]), undefined);
  });

  test('a domain created after the unfiltered listing is rejected: the count is no longer the lists', () => {
    assert.equal(statesFromLists(2, [a, b, c]), undefined);
  });
});

describe('collectStates', () => {
  test('keeps what each domain read as; a domain read twice keeps its last reading', () => {
    const result = collectStates([a, c, { ...a, state: PowerState.PAUSED }]);
    assert.deepEqual(result.states, new Map([[a.uuid, PowerState.PAUSED]]));
    assert.deepEqual(result.unreadable, new Set([c.uuid]));
  });
});
