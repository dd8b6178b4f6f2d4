import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { z } from 'zod';
import { InvalidMessageError } from '../../../../shared/errors.ts';
import { changeEventSchema } from '../../../../shared/messages/change-event.ts';
import { encodeMessage, MAX_MESSAGE_BYTES, parseMessage } from '../../../../shared/messages/codec.ts';
import { hostReportSchema } from '../../../../shared/messages/host-report.ts';
import { hostObservationsSchema, MAX_OBSERVATIONS_PER_MESSAGE } from '../../../../shared/messages/observation.ts';
import { tickSchema } from '../../../../shared/messages/tick.ts';
import { seededRandom } from '../../../../tools/fleet/seeded-random.ts';

const INSTANCE_UUID = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
const ID_A = '0b7e6a52-1c1f-4d0a-9a57-3f2a1b9c8d7e';
const ID_B = 'a3c1d2e4-5f60-4718-8a9b-0c1d2e3f4a5b';
const AT = '2024-05-01T12:00:00.000Z';

const validTick = {
  schemaVersion: 1,
  tickId: ID_A,
  host: 'compute-1.example.org',
  cycle: 3,
  scheduledAt: AT,
  trigger: 'periodic',
};

const validObserved = { observationId: ID_A, instanceUuid: INSTANCE_UUID, powerState: 5 };

const validObservations = {
  schemaVersion: 1,
  host: 'compute-1',
  observedAt: AT,
  trigger: 'tick',
  tickId: ID_B,
  observations: [validObserved],
};

/** Host observations whose one instance has `patch` applied. */
function withObserved(patch: Record<string, unknown>): Record<string, unknown> {
  return { ...validObservations, observations: [{ ...validObserved, ...patch }] };
}

const validChangeEvent = {
  schemaVersion: 1,
  eventId: ID_A,
  instanceUuid: INSTANCE_UUID,
  host: 'compute_1',
  rule: 'stopped',
  before: { powerState: 1, vmState: 'active' },
  after: { powerState: 5, vmState: 'shutoff' },
  observationId: ID_B,
  observedAt: AT,
  committedAt: '2024-05-01T12:00:01.250+02:00',
};

const validHostReport = {
  schemaVersion: 1,
  host: 'compute-1',
  tickId: null,
  cycle: 0,
  trigger: 'manual' as const,
  startedAt: AT,
  durationMs: 12.5,
  outcome: 'synced',
  error: null,
  dbCount: 3,
  hypervisorCount: 4,
  compared: 2,
  drifted: 1,
  missing: 1,
  unknown: 2,
  published: 2,
};

const CONTRACTS: { name: string; schema: z.ZodType; valid: Record<string, unknown> }[] = [
  { name: 'tick', schema: tickSchema, valid: validTick },
  { name: 'host observations', schema: hostObservationsSchema, valid: validObservations },
  { name: 'change event', schema: changeEventSchema, valid: validChangeEvent },
  { name: 'host report', schema: hostReportSchema, valid: validHostReport },
];

function bytes(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

function rejected(result: { ok: boolean; reason?: string }): string {
  assert.equal(result.ok, false, 'expected the message to be rejected');
  assert.ok(!result.ok);
  assert.equal(typeof result.reason, 'string');
  assert.ok((result.reason ?? '').length > 0, 'the reason is empty');
  return result.reason ?? '';
}

describe('parseMessage: valid messages of each contract', () => {
  for (const { name, schema, valid } of CONTRACTS) {
    test(`a valid ${name} parses to itself`, () => {
      assert.deepEqual(parseMessage(schema, bytes(valid)), { ok: true, value: valid });
    });

    test(`a ${name} round-trips through encodeMessage`, () => {
      const encoded = encodeMessage(schema, valid);
      assert.deepEqual(parseMessage(schema, encoded), { ok: true, value: valid });
    });

    test(`a ${name} with extra fields parses, extras dropped`, () => {
      assert.deepEqual(parseMessage(schema, bytes({ ...valid, extra: 'x' })), { ok: true, value: valid });
    });
  }

  test('an observation of an instance the hypervisor does not know (powerState null) parses', () => {
    const message = { ...withObserved({ powerState: null }), trigger: 'event', tickId: null };
    assert.deepEqual(parseMessage(hostObservationsSchema, bytes(message)), { ok: true, value: message });
  });

  test(`host observations with ${MAX_OBSERVATIONS_PER_MESSAGE} instances parse, within the byte limit`, () => {
    const observations = Array.from({ length: MAX_OBSERVATIONS_PER_MESSAGE }, (_, i) => ({
      observationId: ID_A,
      instanceUuid: `${INSTANCE_UUID.slice(0, -6)}${String(i).padStart(6, '0')}`,
      powerState: null,
    }));
    const content = bytes({ ...validObservations, observations });
    assert.ok(content.length < MAX_MESSAGE_BYTES / 2, `${content.length} bytes`);
    assert.equal(parseMessage(hostObservationsSchema, content).ok, true);
  });

  test('a failed host report with an error parses', () => {
    const message = { ...validHostReport, outcome: 'failed', error: 'libvirt unreachable' };
    assert.deepEqual(parseMessage(hostReportSchema, bytes(message)), { ok: true, value: message });
  });

  test('every power state code 0..9 is accepted', () => {
    for (let code = 0; code <= 9; code++) {
      const result = parseMessage(hostObservationsSchema, bytes(withObserved({ powerState: code })));
      assert.equal(result.ok, true, `code ${code}`);
    }
  });

  test('instance UUIDs are upper-cased in, lower-cased out', () => {
    const upper = INSTANCE_UUID.toUpperCase();
    const observations = parseMessage(hostObservationsSchema, bytes(withObserved({ instanceUuid: upper })));
    assert.ok(observations.ok);
    assert.equal(observations.value.observations[0]?.instanceUuid, INSTANCE_UUID);
    const change = parseMessage(changeEventSchema, bytes({ ...validChangeEvent, instanceUuid: upper }));
    assert.ok(change.ok);
    assert.equal(change.value.instanceUuid, INSTANCE_UUID);
  });

  test('an instance UUID that is not RFC 4122 (libvirt accepts any hex) is accepted', () => {
    const result = parseMessage(hostObservationsSchema, bytes(withObserved({ instanceUuid: '00000000-0000-0000-0000-00000000000A' })));
    assert.ok(result.ok);
    assert.equal(result.value.observations[0]?.instanceUuid, '00000000-0000-0000-0000-00000000000a');
  });

  test('a payload of exactly MAX_MESSAGE_BYTES is not rejected for its size', () => {
    const base = bytes({ ...validTick, padding: '' });
    const padded = bytes({ ...validTick, padding: 'x'.repeat(MAX_MESSAGE_BYTES - base.length) });
    assert.equal(padded.length, MAX_MESSAGE_BYTES);
    assert.equal(parseMessage(tickSchema, padded).ok, true);
  });
});

describe('parseMessage: bad input is rejected with a reason, never thrown', () => {
  const raw: { name: string; content: Buffer; reasonMatches: RegExp }[] = [
    { name: 'malformed JSON', content: Buffer.from('{"schemaVersion":1,'), reasonMatches: /not JSON/ },
    { name: 'empty payload', content: Buffer.alloc(0), reasonMatches: /not JSON/ },
    { name: 'binary garbage', content: Buffer.from([0xff, 0xfe, 0x00, 0x7b]), reasonMatches: /not JSON/ },
    { name: 'a JSON array', content: bytes([validTick]), reasonMatches: /not a JSON object/ },
    { name: 'JSON null', content: Buffer.from('null'), reasonMatches: /not a JSON object/ },
    { name: 'a JSON string', content: bytes('tick'), reasonMatches: /not a JSON object/ },
    { name: 'a JSON number', content: Buffer.from('1'), reasonMatches: /not a JSON object/ },
    { name: 'schemaVersion 2', content: bytes({ ...validTick, schemaVersion: 2 }), reasonMatches: /unsupported schemaVersion 2 \(expected 1\)/ },
    { name: 'schemaVersion "1"', content: bytes({ ...validTick, schemaVersion: '1' }), reasonMatches: /unsupported schemaVersion "1"/ },
    { name: 'schemaVersion missing', content: bytes({ ...validTick, schemaVersion: undefined }), reasonMatches: /unsupported schemaVersion undefined/ },
    {
      name: 'payload over MAX_MESSAGE_BYTES',
      content: bytes({ ...validTick, padding: 'x'.repeat(MAX_MESSAGE_BYTES) }),
      reasonMatches: new RegExp(`exceeds ${MAX_MESSAGE_BYTES}`),
    },
  ];
  for (const { name, content, reasonMatches } of raw) {
    test(name, () => {
      for (const { schema } of CONTRACTS) {
        assert.match(rejected(parseMessage(schema, content)), reasonMatches);
      }
    });
  }

  test('a payload one byte over the limit is rejected before parsing', () => {
    const content = Buffer.alloc(MAX_MESSAGE_BYTES + 1, 0x20);
    assert.equal(rejected(parseMessage(tickSchema, content)), `payload of ${MAX_MESSAGE_BYTES + 1} bytes exceeds ${MAX_MESSAGE_BYTES}`);
  });

  // Field-level problems: the reason names the field.
  const fields: { name: string; schema: z.ZodType; message: Record<string, unknown>; field: string }[] = [
    { name: 'tick without tickId', schema: tickSchema, message: { ...validTick, tickId: undefined }, field: 'tickId' },
    { name: 'tick without host', schema: tickSchema, message: { ...validTick, host: undefined }, field: 'host' },
    { name: 'observation without observedAt', schema: hostObservationsSchema, message: { ...validObservations, observedAt: undefined }, field: 'observedAt' },
    { name: 'observation without powerState (null is required, not absence)', schema: hostObservationsSchema, message: withObserved({ powerState: undefined }), field: 'observations.0.powerState' },
    { name: 'host observations with no instance', schema: hostObservationsSchema, message: { ...validObservations, observations: [] }, field: 'observations' },
    {
      name: `host observations with ${MAX_OBSERVATIONS_PER_MESSAGE + 1} instances`,
      schema: hostObservationsSchema,
      message: { ...validObservations, observations: Array.from({ length: MAX_OBSERVATIONS_PER_MESSAGE + 1 }, () => validObserved) },
      field: 'observations',
    },
    {
      name: 'one instance observed twice in one message',
      schema: hostObservationsSchema,
      message: { ...validObservations, observations: [validObserved, { ...validObserved, observationId: ID_B, powerState: 1 }] },
      field: 'observations.1.instanceUuid',
    },
    { name: 'change event without before', schema: changeEventSchema, message: { ...validChangeEvent, before: undefined }, field: 'before' },
    { name: 'host report without dbCount', schema: hostReportSchema, message: { ...validHostReport, dbCount: undefined }, field: 'dbCount' },
    { name: 'powerState 10', schema: hostObservationsSchema, message: withObserved({ powerState: 10 }), field: 'observations.0.powerState' },
    { name: 'powerState -1', schema: hostObservationsSchema, message: withObserved({ powerState: -1 }), field: 'observations.0.powerState' },
    { name: 'powerState 1.5', schema: hostObservationsSchema, message: withObserved({ powerState: 1.5 }), field: 'observations.0.powerState' },
    { name: 'powerState "1"', schema: hostObservationsSchema, message: withObserved({ powerState: '1' }), field: 'observations.0.powerState' },
    { name: 'change event after.powerState 10', schema: changeEventSchema, message: { ...validChangeEvent, after: { powerState: 10, vmState: 'shutoff' } }, field: 'after.powerState' },
    { name: 'change event unknown vmState', schema: changeEventSchema, message: { ...validChangeEvent, before: { powerState: 1, vmState: 'sleeping' } }, field: 'before.vmState' },
    { name: 'change event with a skip rule', schema: changeEventSchema, message: { ...validChangeEvent, rule: 'equal' }, field: 'rule' },
    { name: 'host with spaces', schema: tickSchema, message: { ...validTick, host: 'compute 1' }, field: 'host' },
    { name: 'host with *', schema: tickSchema, message: { ...validTick, host: 'compute-*' }, field: 'host' },
    { name: 'host with #', schema: hostObservationsSchema, message: { ...validObservations, host: 'compute-#' }, field: 'host' },
    { name: 'empty host', schema: hostReportSchema, message: { ...validHostReport, host: '' }, field: 'host' },
    { name: 'host with an empty label', schema: tickSchema, message: { ...validTick, host: 'compute..example' }, field: 'host' },
    { name: 'host starting with a dot', schema: tickSchema, message: { ...validTick, host: '.compute' }, field: 'host' },
    { name: 'host of 254 characters', schema: tickSchema, message: { ...validTick, host: `a${'.b'.repeat(126)}a` }, field: 'host' },
    { name: 'host as a number', schema: tickSchema, message: { ...validTick, host: 42 }, field: 'host' },
    { name: 'instance uuid not a uuid', schema: hostObservationsSchema, message: withObserved({ instanceUuid: 'not-a-uuid' }), field: 'observations.0.instanceUuid' },
    { name: 'instance uuid too short', schema: hostObservationsSchema, message: withObserved({ instanceUuid: INSTANCE_UUID.slice(0, -1) }), field: 'observations.0.instanceUuid' },
    { name: 'instance uuid without dashes', schema: changeEventSchema, message: { ...validChangeEvent, instanceUuid: INSTANCE_UUID.replaceAll('-', '') }, field: 'instanceUuid' },
    { name: 'observation id not a uuid', schema: hostObservationsSchema, message: withObserved({ observationId: 'abc' }), field: 'observations.0.observationId' },
    { name: 'timestamp in words', schema: tickSchema, message: { ...validTick, scheduledAt: 'yesterday' }, field: 'scheduledAt' },
    { name: 'timestamp as epoch ms', schema: hostObservationsSchema, message: { ...validObservations, observedAt: 1714564800000 }, field: 'observedAt' },
    { name: 'timestamp without a time', schema: hostObservationsSchema, message: { ...validObservations, observedAt: '2024-05-01' }, field: 'observedAt' },
    { name: 'timestamp with month 13', schema: changeEventSchema, message: { ...validChangeEvent, committedAt: '2024-13-01T00:00:00Z' }, field: 'committedAt' },
    { name: 'negative cycle', schema: tickSchema, message: { ...validTick, cycle: -1 }, field: 'cycle' },
    { name: 'unknown trigger', schema: tickSchema, message: { ...validTick, trigger: 'cron' }, field: 'trigger' },
    { name: 'negative durationMs', schema: hostReportSchema, message: { ...validHostReport, durationMs: -1 }, field: 'durationMs' },
    { name: 'fractional count', schema: hostReportSchema, message: { ...validHostReport, drifted: 0.5 }, field: 'drifted' },
  ];
  for (const { name, schema, message, field } of fields) {
    test(name, () => {
      const reason = rejected(parseMessage(schema, bytes(message)));
      assert.ok(reason.startsWith(`${field}: `) || reason.includes(`; ${field}: `), `reason should name ${field}: ${reason}`);
    });
  }

  test('several problems are all reported', () => {
    const reason = rejected(parseMessage(tickSchema, bytes({ schemaVersion: 1 })));
    for (const field of ['tickId', 'host', 'cycle', 'scheduledAt', 'trigger']) {
      assert.match(reason, new RegExp(`(^|; )${field}: `), field);
    }
  });
});

describe('encodeMessage', () => {
  test('throws InvalidMessageError on an invalid message', () => {
    assert.throws(
      // Typed as any schema: the compiler would (rightly) refuse these literals for the real types.
      () => encodeMessage(tickSchema as z.ZodType, { ...validTick, host: 'bad host' }),
      (err: unknown) => err instanceof InvalidMessageError && err.code === 'VS_INVALID_MESSAGE' && !err.retryable,
    );
  });

  test('throws on a power state out of range', () => {
    assert.throws(
      () => encodeMessage(hostObservationsSchema as z.ZodType, withObserved({ powerState: 10 })),
      InvalidMessageError,
    );
  });

  test('produces JSON bytes', () => {
    const encoded = encodeMessage(hostReportSchema as z.ZodType, validHostReport);
    assert.ok(Buffer.isBuffer(encoded));
    assert.deepEqual(JSON.parse(encoded.toString('utf8')), validHostReport);
  });
});

describe('parseMessage: property-style, never throws', () => {
  const ITERATIONS = 300;
  const random = seededRandom(0x5eed);
  const int = (below: number): number => Math.floor(random() * below);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)] as T;

  const replacements: unknown[] = [
    null, undefined, 0, -1, 1, 10, 1.5, '', ' ', 'x', '1', true, false, [], {}, [1], { a: 1 },
    'compute 1', '*', '#', INSTANCE_UUID.toUpperCase(), '2024-13-01T00:00:00Z', AT, 'tick', 'stopped',
    Number.MAX_SAFE_INTEGER, -0,
  ];

  function mutate(valid: Record<string, unknown>): Buffer {
    switch (int(5)) {
      case 4: {
        // Add unknown fields: consumers must tolerate them (forward compatibility).
        const message: Record<string, unknown> = structuredClone(valid);
        message[`extra${int(1000)}`] = pick(replacements);
        return bytes(message);
      }
      case 0: {
        // Random bytes.
        const buffer = Buffer.alloc(int(64));
        for (let i = 0; i < buffer.length; i++) buffer[i] = int(256);
        return buffer;
      }
      case 1: {
        // Flip, drop or insert bytes in a valid encoding.
        const buffer = Buffer.from(bytes(valid));
        const edits = 1 + int(4);
        let edited = buffer;
        for (let e = 0; e < edits; e++) {
          const at = int(edited.length);
          const kind = int(3);
          if (kind === 0) edited[at] = int(256);
          else if (kind === 1) edited = Buffer.concat([edited.subarray(0, at), edited.subarray(at + 1)]);
          else edited = Buffer.concat([edited.subarray(0, at), Buffer.from([int(128)]), edited.subarray(at)]);
        }
        return edited;
      }
      case 2: {
        // Replace or delete fields.
        const message: Record<string, unknown> = structuredClone(valid);
        const keys = Object.keys(message);
        for (let e = 0; e < 1 + int(3); e++) {
          const key = pick(keys);
          if (int(4) === 0) delete message[key];
          else message[key] = pick(replacements);
        }
        return bytes(message);
      }
      default: {
        // Truncate a valid encoding.
        const buffer = bytes(valid);
        return buffer.subarray(0, int(buffer.length + 1));
      }
    }
  }

  test(`${ITERATIONS} pseudo-random and mutated payloads`, () => {
    let accepted = 0;
    let rejectedCount = 0;
    for (let i = 0; i < ITERATIONS; i++) {
      const { schema, valid } = pick(CONTRACTS);
      const content = mutate(valid);
      const result = parseMessage(schema, content);
      if (result.ok) {
        // Whatever is accepted re-validates: it can be encoded and parses back to itself.
        const reencoded = encodeMessage(schema, result.value);
        assert.deepEqual(parseMessage(schema, reencoded), result, `iteration ${i}`);
        accepted++;
      } else {
        assert.equal(typeof result.reason, 'string', `iteration ${i}`);
        assert.ok(result.reason.length > 0, `iteration ${i}`);
        rejectedCount++;
      }
    }
    assert.equal(accepted + rejectedCount, ITERATIONS);
    // The mutations are not all trivially rejected, nor all accepted (extra fields always are).
    assert.ok(rejectedCount > ITERATIONS / 2, `rejected ${rejectedCount}`);
    assert.ok(accepted > 0, `accepted ${accepted}`);
  });
});

describe('timestamps PostgreSQL cannot store are rejected at the boundary', () => {
  for (const observedAt of ['0000-01-01T00:00:00Z', '1969-12-31T23:59:59Z', '+010000-01-01T00:00:00Z']) {
    test(observedAt, () => {
      const result = parseMessage(hostObservationsSchema, Buffer.from(JSON.stringify({ ...validObservations, observedAt })));
      assert.equal(result.ok, false);
      if (!result.ok) assert.match(result.reason, /observedAt/);
    });
  }
});
