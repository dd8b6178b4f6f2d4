import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  fromLibvirtState,
  isPowerState,
  POWER_STATES,
  PowerState,
  powerStateKey,
  powerStateName,
} from '../../../shared/power-state.ts';

// code, constant name, routing key
const TABLE = [
  [0, 'NOSTATE', 'nostate'],
  [1, 'RUNNING', 'running'],
  [2, 'BLOCKED', 'blocked'],
  [3, 'PAUSED', 'paused'],
  [4, 'SHUTDOWN', 'shutdown'],
  [5, 'SHUTOFF', 'shutoff'],
  [6, 'CRASHED', 'crashed'],
  [7, 'SUSPENDED', 'suspended'],
  [8, 'FAILED', 'failed'],
  [9, 'BUILDING', 'building'],
] as const;

describe('power-state model', () => {
  test('the codes are libvirt virDomainState values plus FAILED and BUILDING', () => {
    assert.deepEqual(
      POWER_STATES,
      TABLE.map(([code]) => code),
    );
    for (const [code, name] of TABLE) assert.equal(PowerState[name], code);
  });

  for (const [code, name, key] of TABLE) {
    test(`${code} is ${name}, key ${key}`, () => {
      assert.equal(powerStateName(code), name);
      assert.equal(powerStateKey(code), key);
    });
  }

  test('routing keys are unique', () => {
    const keys = POWER_STATES.map(powerStateKey);
    assert.equal(new Set(keys).size, POWER_STATES.length);
  });
});

describe('fromLibvirtState', () => {
  for (const code of [0, 1, 2, 3, 4, 5, 6, 7]) {
    test(`${code} is a libvirt state`, () => {
      assert.equal(fromLibvirtState(code), code);
    });
  }
  for (const code of [8, 9, -1, 1.5, 10, Number.NaN, Number.POSITIVE_INFINITY]) {
    test(`${code} is not a libvirt state`, () => {
      assert.equal(fromLibvirtState(code), undefined);
    });
  }
});

describe('isPowerState', () => {
  for (const value of [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]) {
    test(`${value} is a power state`, () => {
      assert.equal(isPowerState(value), true);
    });
  }
  const invalid: unknown[] = [-1, 10, 1.5, Number.NaN, '1', null, undefined, true, {}, [1]];
  for (const value of invalid) {
    test(`${JSON.stringify(value) ?? String(value)} is not a power state`, () => {
      assert.equal(isPowerState(value), false);
    });
  }
});
