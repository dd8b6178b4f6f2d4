/**
 * Which pending items the next batch takes when other batches may still be in flight (pure;
 * shared/batcher.ts applies it). Items carry keys (for the writer: the instances a message
 * observes); two items that share a key must never be in flight at once, and must commit in
 * the order they arrived. So the cut walks the lane in arrival order and takes items until
 * they weigh `maxSize`, except that it holds back every item that shares a key with a batch
 * in flight (`busy`) or with an item held back before it in this walk: the latter keeps an
 * item from overtaking an earlier one of the same key.
 */
export interface PendingItem {
  weight: number;
  keys: readonly string[];
}

export interface Cut {
  /** Indexes into the lane, ascending. */
  taken: number[];
  weight: number;
}

export function cutBatch(pending: readonly PendingItem[], maxSize: number, busy: (key: string) => boolean): Cut {
  const taken: number[] = [];
  const heldBack = new Set<string>();
  let weight = 0;
  for (let index = 0; index < pending.length && weight < maxSize; index++) {
    const item = pending[index];
    if (item === undefined) continue;
    if (item.keys.some((key) => busy(key) || heldBack.has(key))) {
      for (const key of item.keys) heldBack.add(key);
      continue;
    }
    taken.push(index);
    weight += item.weight;
  }
  return { taken, weight };
}
