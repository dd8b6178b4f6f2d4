/**
 * docs/asyncapi.yaml is what `npm run asyncapi` generates from the zod contracts today, and
 * @asyncapi/parser accepts it as AsyncAPI 3 with no error or warning: every contract is a
 * message on its channel, with the exchange and routing key the services use.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { Parser } from '@asyncapi/parser';
import { Exchange } from '../../../shared/bus/topology.ts';
import { CONTRACTS } from '../../../shared/messages/contracts.ts';
import { ASYNCAPI_FILE, renderAsyncApi } from '../../../tools/export-asyncapi.ts';

const published = readFileSync(ASYNCAPI_FILE, 'utf8');

test('docs/asyncapi.yaml is up to date with the zod contracts', () => {
  assert.equal(published, renderAsyncApi(), 'run npm run asyncapi');
});

test('@asyncapi/parser accepts it as AsyncAPI 3 with no error or warning', async () => {
  const { document, diagnostics } = await new Parser().parse(published);
  // Severity 0 is an error, 1 a warning; 2 and 3 are hints (e.g. "a newer AsyncAPI exists").
  const problems = diagnostics.filter((d) => d.severity <= 1).map((d) => `${d.code} ${d.message} at ${d.path.join('.')}`);
  assert.deepEqual(problems, []);
  assert.ok(document !== undefined);
  assert.match(document.version(), /^3\./);

  const channels = document.channels().all().map((channel) => ({
    address: channel.address(),
    messages: channel.messages().all().map((message) => message.name()),
  }));
  assert.deepEqual([...new Set(channels.flatMap((c) => c.messages))].sort(), Object.keys(CONTRACTS).sort());
  assert.deepEqual(channels.filter((c) => c.messages.includes('host-observations')).map((c) => c.address).sort(), ['event-observation.{host}', 'observation.{host}']);
  assert.deepEqual(channels.find((c) => c.messages.includes('change-event'))?.address, 'instance.{host}.{powerState}');
  assert.deepEqual(channels.find((c) => c.messages.includes('host-report'))?.address, 'report.{host}');
  assert.ok(published.includes(`name: ${Exchange.changes}`));
});
