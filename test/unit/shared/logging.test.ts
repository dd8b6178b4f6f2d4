import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger } from '../../../shared/logging.ts';

function capture(): { lines: string[]; destination: { write(line: string): void } } {
  const lines: string[] = [];
  return { lines, destination: { write: (line: string) => lines.push(line) } };
}

/** The top-level keys exactly as written, repeats included (JSON.parse would hide them). */
function topLevelKeys(line: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  for (let i = 0; i < line.length; i++) {
    const char = line[i];
    if (char === '"') {
      const end = line.indexOf('"', i + 1);
      if (depth === 1 && line[end + 1] === ':') keys.push(line.slice(i + 1, end));
      i = end;
    } else if (char === '{' || char === '[') depth++;
    else if (char === '}' || char === ']') depth--;
  }
  return keys;
}

test('a line never carries the same key twice: a nested component and a field named like a base key', () => {
  const { lines, destination } = capture();
  const root = createLogger({ service: 'sync-agent', level: 'info', destination });
  // As the agent builds the lifecycle watcher's logger.
  const watcher = root.child({ component: 'sync-agent' }).child({ host: 'h1' }).child({ component: 'lifecycle-watcher' });
  watcher.info({ uri: 'test:///default', pid: 4242 }, 'watching libvirt lifecycle events');
  watcher.info({ nested: { component: 'kept', pid: 1 } }, 'nested keys are not top-level repeats');

  const [first, second] = lines;
  assert.ok(first !== undefined && second !== undefined);
  for (const line of [first, second]) {
    const keys = topLevelKeys(line);
    assert.deepEqual(keys, [...new Set(keys)], line);
  }
  const entry = JSON.parse(first) as Record<string, unknown>;
  assert.equal(entry.component, 'lifecycle-watcher', 'the innermost binding wins');
  assert.equal(entry.pid, 4242);
  assert.equal(entry.host, 'h1');
  assert.deepEqual((JSON.parse(second) as { nested: unknown }).nested, { component: 'kept', pid: 1 });
});

test('a line without repeats is written as pino wrote it', () => {
  const { lines, destination } = capture();
  createLogger({ service: 'writer', level: 'info', destination }).child({ component: 'state-writer' }).info({ changes: 3 }, 'batch committed');
  assert.match(lines[0] ?? '', /^\{"level":30,"time":"[^"]+","service":"writer","pid":\d+,"component":"state-writer","changes":3,"msg":"batch committed"\}\n$/);
});
