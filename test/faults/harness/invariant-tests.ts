/**
 * The checks every fault test file makes after its fault, as separate tests so a
 * failure names the invariant that broke.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FaultOutcome } from './fault-rig.ts';

export function defineInvariantTests(outcomeOf: () => FaultOutcome): void {
  test('the system settles and every drifted instance ends in its expected state (lost = 0)', () => {
    const outcome = outcomeOf();
    assert.equal(outcome.settled, true, 'the system did not settle before the deadline');
    assert.deepEqual(outcome.invariants.mismatches, []);
    assert.equal(outcome.figures.lost, 0);
  });

  test('one audit row per committed change, every change published, no row regressed', () => {
    const outcome = outcomeOf();
    assert.deepEqual(outcome.invariants.violations, []);
    assert.equal(outcome.invariants.auditRows, outcome.invariants.committed);
    assert.ok(outcome.figures.published >= outcome.figures.committed, 'every committed change was received downstream');
  });

  test('no service crashed: every process the test did not kill stopped with exit 0 on SIGTERM', () => {
    const outcome = outcomeOf();
    assert.deepEqual(outcome.crashed, []);
    assert.deepEqual(outcome.stats.all.errors.filter((message) => /fatal|failed to start|shutdown failed/i.test(message)), []);
  });
}
