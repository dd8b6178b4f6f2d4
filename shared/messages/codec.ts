/**
 * The only way messages cross the bus: validated on the way out, parsed (never cast)
 * on the way in. Parsing never throws; a bad message comes back with a reason.
 */
import type { z } from 'zod';
import { coerceError, InvalidMessageError } from '../errors.ts';
import { SCHEMA_VERSION } from './fields.ts';

/** Larger payloads are rejected before JSON parsing; no contract comes close. */
export const MAX_MESSAGE_BYTES = 64 * 1024;

export type ParseResult<T> = { ok: true; value: T } | { ok: false; reason: string };

export function parseMessage<S extends z.ZodType>(schema: S, content: Buffer): ParseResult<z.output<S>> {
  if (content.length > MAX_MESSAGE_BYTES) {
    return { ok: false, reason: `payload of ${content.length} bytes exceeds ${MAX_MESSAGE_BYTES}` };
  }
  let json: unknown;
  try {
    json = JSON.parse(content.toString('utf8'));
  } catch (err) {
    return { ok: false, reason: `not JSON: ${coerceError(err).message}` };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return { ok: false, reason: 'not a JSON object' };
  }
  const version = 'schemaVersion' in json ? json.schemaVersion : undefined;
  if (version !== SCHEMA_VERSION) {
    return { ok: false, reason: `unsupported schemaVersion ${JSON.stringify(version)} (expected ${SCHEMA_VERSION})` };
  }
  const result = schema.safeParse(json);
  if (!result.success) {
    const reason = result.error.issues
      .map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`)
      .join('; ');
    return { ok: false, reason };
  }
  return { ok: true, value: result.data };
}

/** Serialises a message after checking it against its own contract: we never publish what we would reject. */
export function encodeMessage<S extends z.ZodType>(schema: S, message: z.input<S>): Buffer {
  const result = schema.safeParse(message);
  if (!result.success) {
    throw new InvalidMessageError(`refusing to publish an invalid message: ${result.error.message}`);
  }
  return Buffer.from(JSON.stringify(message));
}
