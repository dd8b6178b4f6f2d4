import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createDebouncer } from '../../../../services/sync-agent/debouncer.ts';
import { waitFor } from '../../../../tools/wait-for.ts';

describe('createDebouncer', () => {
  test('a burst for one key fires once; different keys fire separately', async () => {
    const fired: string[] = [];
    const debouncer = createDebouncer(20, (key) => fired.push(key));
    for (let i = 0; i < 5; i++) debouncer.push('vm-a');
    debouncer.push('vm-b');
    assert.equal(debouncer.pending(), 2);
    await waitFor('both keys to fire', () => fired.length === 2, { timeoutMs: 2_000, intervalMs: 5 });
    assert.deepEqual(fired.sort(), ['vm-a', 'vm-b']);
    assert.equal(debouncer.pending(), 0);
  });

  test('clear cancels everything pending', async () => {
    const fired: string[] = [];
    const debouncer = createDebouncer(10, (key) => fired.push(key));
    debouncer.push('vm-a');
    debouncer.clear();
    // A key pushed after the clear fires; the cleared one never does.
    debouncer.push('vm-b');
    await waitFor('vm-b to fire', () => fired.length > 0, { timeoutMs: 2_000, intervalMs: 5 });
    assert.deepEqual(fired, ['vm-b']);
  });
});
