import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { cutBatch, type PendingItem } from '../../../shared/batch-cut.ts';

const KEY_SETS: ReadonlyArray<readonly string[]> = [[], ['a'], ['b'], ['a', 'b']];

/** Every lane of `length` items, each with one of KEY_SETS and a weight of 1 or 2. */
function* lanes(length: number): Generator<PendingItem[]> {
  if (length === 0) {
    yield [];
    return;
  }
  for (const rest of lanes(length - 1)) {
    for (const keys of KEY_SETS) for (const weight of [1, 2]) yield [...rest, { keys, weight }];
  }
}

const shares = (x: PendingItem, y: PendingItem): boolean => x.keys.some((key) => y.keys.includes(key));

describe('cutBatch', () => {
  test('takes a prefix when nothing conflicts', () => {
    const lane = [1, 2, 3, 4].map((weight) => ({ weight, keys: [`k${weight}`] }));
    assert.deepEqual(cutBatch(lane, 3, () => false), { taken: [0, 1], weight: 3 });
  });

  test('holds back an item with a busy key and every later item sharing a key with it, transitively', () => {
    const lane = [
      { weight: 1, keys: ['x'] }, // busy
      { weight: 1, keys: ['y', 'x'] }, // shares x with a held-back item: y is held back from here on
      { weight: 1, keys: ['y'] },
      { weight: 1, keys: ['z'] },
    ];
    assert.deepEqual(cutBatch(lane, 10, (key) => key === 'x'), { taken: [3], weight: 1 });
  });

  // Every lane of up to 5 items over two keys, weights 1-2, every busy set and maxSize 1-6: the
  // cut is the greedy walk the rule states, checked by the properties that pin it down.
  test('exhaustively: no busy key, no overtaking within a key, greedy, stops at maxSize', () => {
    let cases = 0;
    for (let length = 0; length <= 5; length++) {
      for (const lane of lanes(length)) {
        for (const busyKeys of KEY_SETS) {
          for (let maxSize = 1; maxSize <= 6; maxSize++) {
            cases++;
            const { taken, weight } = cutBatch(lane, maxSize, (key) => busyKeys.includes(key));
            const label = JSON.stringify({ lane, busyKeys, maxSize, taken });
            assert.deepEqual([...taken].sort((x, y) => x - y), taken, `ascending: ${label}`);
            assert.equal(weight, taken.reduce((sum, index) => sum + (lane[index]?.weight ?? 0), 0), `weight: ${label}`);
            const last = taken.at(-1) ?? -1;
            // Without its last item the batch was still light: a cut never goes on past maxSize.
            assert.ok(weight - (lane[last]?.weight ?? 0) < maxSize, `stops at maxSize: ${label}`);
            lane.forEach((item, index) => {
              const isTaken = taken.includes(index);
              const conflicts = item.keys.some((key) => busyKeys.includes(key));
              const earlierLeft = lane.slice(0, index).filter((_, before) => !taken.includes(before));
              if (isTaken) {
                assert.ok(!conflicts, `a busy key taken: ${label}`);
                assert.ok(!earlierLeft.some((other) => shares(other, item)), `overtakes an item of its key: ${label}`);
              } else if (index < last || weight < maxSize) {
                // Left behind with room in the batch: only a conflict may keep it.
                assert.ok(conflicts || earlierLeft.some((other) => shares(other, item)), `left behind for nothing: ${label}`);
              }
            });
          }
        }
      }
    }
    assert.equal(cases, 4 * 6 * [0, 1, 2, 3, 4, 5].reduce((sum, n) => sum + 8 ** n, 0));
  });
});
