import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backoffDelayMs } from '../../../shared/retry.ts';

const backoff = { initialDelayMs: 100, maxDelayMs: 1_000 };

test('backoff doubles per attempt, with jitter in the upper half of each step, up to the cap', () => {
  const cases = [
    { attempt: 1, step: 100 },
    { attempt: 2, step: 200 },
    { attempt: 3, step: 400 },
    { attempt: 4, step: 800 },
    { attempt: 5, step: 1_000 },
    { attempt: 60, step: 1_000 },
  ];
  for (const { attempt, step } of cases) {
    assert.equal(backoffDelayMs(attempt, backoff, () => 0), step / 2, `attempt ${attempt}, lowest`);
    assert.equal(backoffDelayMs(attempt, backoff, () => 1), step, `attempt ${attempt}, highest`);
  }
});

test('two consumers retrying together spread out', () => {
  const delays = new Set(Array.from({ length: 50 }, () => backoffDelayMs(4, backoff)));
  assert.ok(delays.size > 10, `only ${delays.size} distinct delays in 50`);
  for (const delay of delays) assert.ok(delay >= 400 && delay <= 800, `${delay} within [400, 800]`);
});
