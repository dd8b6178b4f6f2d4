/**
 * Property-based generation (fast-check) of messages no virtsync consumer may accept:
 * arbitrary bytes, arbitrary JSON, and near-valid messages (one field broken: wrong
 * schemaVersion, unknown power-state code, bad host name, bad uuid or timestamp, a field
 * missing) plus oversized payloads (> 64 KiB) wrapped around an otherwise valid message.
 * Each is made from a valid template of its contract, so "near" means one mutation away.
 */
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import type { z } from 'zod';
import { MAX_MESSAGE_BYTES, parseMessage } from '../../../shared/messages/codec.ts';

export type Template = Record<string, unknown>;

export interface MalformedMessage {
  kind: string;
  body: Buffer;
}

const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));

/** Values that no field of ours accepts where a host name, uuid, timestamp or state is expected. */
const badHost = fc.oneof(
  fc.constantFrom('', ' ', 'bad host', 'a..b', '-leading-dash', 'x'.repeat(300), 'host#1', 'höst', 'a.b.'),
  fc.string({ minLength: 1, maxLength: 20 }).map((s) => `${s} ${s}`),
);
const badUuid = fc.oneof(fc.constantFrom('', 'not-a-uuid', '1234', '6f1e1c1a-9d7b-4f57-b3b1'), fc.integer());
const badTimestamp = fc.oneof(fc.constantFrom('', 'yesterday', '2026-13-45T99:99:99Z', '2026-11-24 20:10:00'), fc.integer(), fc.constant(null));
const badPowerState = fc.oneof(
  fc.integer({ min: 10, max: 1_000_000 }),
  fc.integer({ min: -1_000_000, max: -1 }),
  fc.double({ min: 0.1, max: 8.9, noInteger: true, noNaN: true }),
  fc.constantFrom('running', '1', true),
);
const badSchemaVersion = fc.oneof(
  fc.integer().filter((v) => v !== 1),
  fc.constantFrom('1', null, 1.5, [1], { v: 1 }),
);

/** One field of the template broken, in every way that applies to that field. */
function nearValid(template: Template): fc.Arbitrary<MalformedMessage> {
  const keys = Object.keys(template);
  const mutate = (kind: string, field: string, values: fc.Arbitrary<unknown>): fc.Arbitrary<MalformedMessage> =>
    values.map((value) => ({ kind, body: json({ ...template, [field]: value }) }));
  const options: Array<fc.Arbitrary<MalformedMessage>> = [
    mutate('wrong schemaVersion', 'schemaVersion', badSchemaVersion),
    fc.constantFrom(...keys.filter((key) => key !== 'schemaVersion')).map((key) => {
      const { [key]: _dropped, ...rest } = template;
      return { kind: `missing ${key}`, body: json(rest) };
    }),
    fc.constantFrom(...keys.filter((key) => key !== 'schemaVersion')).map((key) => ({ kind: `${key} of the wrong type`, body: json({ ...template, [key]: { nested: [key] } }) })),
  ];
  if ('host' in template) options.push(mutate('bad host', 'host', badHost));
  if ('powerState' in template) options.push(mutate('unknown power-state code', 'powerState', badPowerState));
  if ('instanceUuid' in template) options.push(mutate('bad instance uuid', 'instanceUuid', badUuid));
  for (const field of ['observedAt', 'scheduledAt', 'committedAt'] as const) {
    if (field in template) options.push(mutate(`bad ${field}`, field, badTimestamp));
  }
  if ('after' in template) options.push(mutate('unknown power-state code', 'after', badPowerState.map((powerState) => ({ powerState, vmState: 'active' }))));
  return fc.oneof(...options);
}

const oversized = (template: Template): fc.Arbitrary<MalformedMessage> =>
  fc.integer({ min: 1, max: 64 * 1024 }).map((extra) => ({
    kind: 'oversized',
    body: json({ ...template, padding: 'x'.repeat(MAX_MESSAGE_BYTES + extra) }),
  }));

const garbage: fc.Arbitrary<MalformedMessage> = fc.oneof(
  fc.uint8Array({ minLength: 0, maxLength: 512 }).map((bytes) => ({ kind: 'arbitrary bytes', body: Buffer.from(bytes) })),
  fc.jsonValue().map((value) => ({ kind: 'arbitrary JSON', body: json(value) })),
  fc.string({ maxLength: 200 }).map((text) => ({ kind: 'arbitrary text', body: Buffer.from(text) })),
);

/**
 * `count` messages for a consumer of `schema`, each checked to be rejected by it (a
 * generated value that happened to be valid would not be malformed; none is expected).
 */
export function malformedMessages(options: { template: Template; schema: z.ZodType; count: number; seed: number }): MalformedMessage[] {
  const arbitrary = fc
    .oneof(
      { weight: 3, arbitrary: garbage },
      { weight: 6, arbitrary: nearValid(options.template) },
      { weight: 1, arbitrary: oversized(options.template) },
    )
    .filter((message) => !parseMessage(options.schema, message.body).ok);
  return fc.sample(arbitrary, { numRuns: options.count, seed: options.seed });
}

export const templates = {
  hostObservations: (host: string): Template => ({
    schemaVersion: 1,
    host,
    observedAt: new Date().toISOString(),
    trigger: 'tick',
    tickId: randomUUID(),
    observations: [{ observationId: randomUUID(), instanceUuid: randomUUID(), powerState: 1 }],
  }),
  changeEvent: (host: string): Template => ({
    schemaVersion: 1,
    eventId: randomUUID(),
    instanceUuid: randomUUID(),
    host,
    rule: 'stopped',
    before: { powerState: 1, vmState: 'active' },
    after: { powerState: 5, vmState: 'shutoff' },
    observationId: randomUUID(),
    observedAt: new Date().toISOString(),
    committedAt: new Date().toISOString(),
  }),
  tick: (host: string): Template => ({
    schemaVersion: 1,
    tickId: randomUUID(),
    host,
    cycle: 3,
    scheduledAt: new Date().toISOString(),
    trigger: 'periodic',
  }),
};
