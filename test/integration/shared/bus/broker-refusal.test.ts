/**
 * A broker that refuses us is not a broker that is away: a wrong password or a vhost that
 * does not exist is logged as a refusal (error, with the reason) and named in readiness,
 * while virtsync keeps retrying with backoff.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { brokerHealth, connectBus } from '../../../../shared/bus/connect.ts';
import { createLogger } from '../../../../shared/logging.ts';
import { waitFor } from '../../../../tools/wait-for.ts';

const CASES = [
  { what: 'a wrong password', url: 'amqp://guest:wrong-password@127.0.0.1:5672/', says: 'refused the credentials', kind: 'authentication' },
  { what: 'a vhost that does not exist', url: `amqp://guest:guest@127.0.0.1:5672/virtsync-missing-${process.pid}`, says: 'refused the vhost', kind: 'vhost' },
  { what: 'nothing listening', url: 'amqp://guest:guest@127.0.0.1:1/', says: 'unreachable', kind: 'unreachable' },
];

for (const { what, url, says, kind } of CASES) {
  test(`${what}: readiness says "${says}" and the log names it`, async () => {
    const lines: string[] = [];
    const log = createLogger({ service: 'test', level: 'warn', destination: { write: (line: string) => lines.push(line) } });
    const bus = connectBus({ url, name: 'test refusal', log });
    try {
      await waitFor('a failed attempt', () => lines.length > 0, { timeoutMs: 15_000 });
      const health = brokerHealth(bus);
      assert.equal(typeof health === 'object' && health.ok, false);
      assert.match(typeof health === 'object' ? (health.reason ?? '') : '', new RegExp(says));
      const entry = JSON.parse(lines[0] ?? '{}') as { level: number; kind: string; retryInMs: number };
      assert.equal(entry.kind, kind);
      assert.equal(entry.level, kind === 'unreachable' ? 40 : 50, 'a refusal is an error, an outage a warning');
      assert.ok(entry.retryInMs >= 1_000 && entry.retryInMs <= 2_000, `first retry in ${entry.retryInMs} ms`);
    } finally {
      await bus.close();
    }
  });
}
