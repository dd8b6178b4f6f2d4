import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger } from '../../../shared/logging.ts';
import { redactSecrets } from '../../../shared/redact.ts';

const cases: { text: string; redacted: string }[] = [
  { text: 'amqps://writer:s3cret@broker:5671/virtsync', redacted: 'amqps://writer:[redacted]@broker:5671/virtsync' },
  { text: 'connect postgres://u:p%40ss@db/x failed', redacted: 'connect postgres://u:[redacted]@db/x failed' },
  { text: 'http://admin:pw@127.0.0.1:15672/api and amqp://a:b@c/', redacted: 'http://admin:[redacted]@127.0.0.1:15672/api and amqp://a:[redacted]@c/' },
  { text: 'amqps://broker/virtsync (certificate login)', redacted: 'amqps://broker/virtsync (certificate login)' },
  { text: 'postgres://agent%3Ah1@db/virtsync', redacted: 'postgres://agent%3Ah1@db/virtsync' },
];

for (const { text, redacted } of cases) {
  test(`redactSecrets: ${text}`, () => assert.equal(redactSecrets(text), redacted));
}

function capture(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { lines, stream };
}

test('the logger redacts connection strings by field and passwords inside errors', () => {
  const { lines, stream } = capture();
  const log = createLogger({ service: 'test', level: 'info', destination: stream });
  log.info({ amqpUrl: 'amqp://u:hunter2@b/', config: { databaseUrl: 'postgres://u:hunter2@d/x' }, password: 'hunter2' }, 'configured');
  log.warn({ err: new Error('cannot connect to amqp://u:hunter2@broker/', { cause: new Error('inner') }) }, 'broker connection attempt failed');
  const output = lines.join('');
  assert.equal(lines.length, 2);
  assert.doesNotMatch(output, /hunter2/);
  assert.match(output, /amqp:\/\/u:\[redacted\]@broker\//);
});
