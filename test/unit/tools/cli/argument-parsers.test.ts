import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidArgumentError } from 'commander';
import { PowerState } from '../../../../shared/power-state.ts';
import { collectHostName, parseDurationMs, parseInstanceUuid, parsePowerStateKey, parseRatio, wholeNumber } from '../../../../tools/cli/argument-parsers.ts';
import { changeBindingPattern } from '../../../../tools/cli/tail-command.ts';

const accepted: Array<[string, () => unknown, unknown]> = [
  ['a host name', () => collectHostName('compute-01.dc1', ['a']), ['a', 'compute-01.dc1']],
  ['a power state, any case', () => parsePowerStateKey('ShutOff'), PowerState.SHUTOFF],
  ['nostate', () => parsePowerStateKey('nostate'), PowerState.NOSTATE],
  ['an upper-case UUID, lower-cased', () => parseInstanceUuid('5190A7EA-6FB9-449D-8E50-627BD1968930'), '5190a7ea-6fb9-449d-8e50-627bd1968930'],
  ['a whole number in range', () => wholeNumber(1, 10)('10'), 10],
  ['a ratio', () => parseRatio('0.25'), 0.25],
  ['a duration in minutes', () => parseDurationMs('20m'), 1_200_000],
  ['a duration in hours', () => parseDurationMs('2h'), 7_200_000],
  ['a bare number of seconds', () => parseDurationMs('90'), 90_000],
];
for (const [name, parse, expected] of accepted) {
  test(`accepts ${name}`, () => assert.deepEqual(parse(), expected));
}

const refused: Array<[string, () => unknown]> = [
  ['a host name with a space', () => collectHostName('bad host', undefined)],
  ['a topic wildcard as host', () => collectHostName('#', undefined)],
  ['an unknown power state', () => parsePowerStateKey('sleepy')],
  ['a display name that is not a key', () => parsePowerStateKey('pending')],
  ['a short UUID', () => parseInstanceUuid('5190a7ea')],
  ['zero where 1 is the minimum', () => wholeNumber(1)('0')],
  ['a fraction', () => wholeNumber(0)('1.5')],
  ['an empty number', () => wholeNumber(0)('')],
  ['a ratio above 1', () => parseRatio('1.5')],
  ['a duration with an unknown unit', () => parseDurationMs('20 fortnights')],
  ['a zero duration', () => parseDurationMs('0s')],
];
for (const [name, parse] of refused) {
  test(`refuses ${name}`, () => assert.throws(parse, InvalidArgumentError));
}

const patterns: Array<[string | undefined, PowerState | undefined, string]> = [
  [undefined, undefined, 'instance.*.*'],
  ['compute-01.dc1', undefined, 'instance.compute-01_dc1.*'],
  [undefined, PowerState.RUNNING, 'instance.*.running'],
  ['h1', PowerState.SHUTOFF, 'instance.h1.shutoff'],
];
for (const [host, state, pattern] of patterns) {
  test(`tail binds ${pattern}`, () => assert.equal(changeBindingPattern(host, state), pattern));
}
test('tail --proposed binds proposed.<host>.<state>', () => assert.equal(changeBindingPattern('compute-01.dc1', PowerState.SHUTOFF, 'proposed'), 'proposed.compute-01_dc1.shutoff'));
