/**
 * One pino root per process. Services bind `{ service }` here, `{ component }` per module
 * and `{ host }` / `{ msgId }` per unit of work; data goes in fields, never in the message.
 */
import { type DestinationStream, pino, type Logger } from 'pino';
import { REDACTED, redactSecrets } from './redact.ts';

export type { Logger };

/** Fields that are secrets wherever they appear: connection strings and passwords (TLS keys are only ever read into sockets). */
const SECRET_PATHS = ['databaseUrl', 'amqpUrl', 'managementUrl', 'password'].flatMap((field) => [field, `*.${field}`]);

/**
 * pino writes a key bound twice (a child's `component` under its parent's, a field named like
 * a base one) twice in one JSON object, which Elasticsearch and others reject. A line is
 * re-serialised only when it has a repeated key; the innermost value wins, as with pino's own
 * merge. The scan is cheap; the re-serialisation only happens on the rare line that needs it.
 */
export function withUniqueKeys(line: string): string {
  const keys = line.match(/[{,]"[^"\\]+":/g);
  if (keys === null || new Set(keys.map((key) => key.slice(1))).size === keys.length) return line;
  // A repeated key may also be a nested one: parsing settles it (nested objects are unique already).
  const parsed: unknown = JSON.parse(line);
  return `${JSON.stringify(parsed)}\n`;
}

/** JSON lines to stdout, unless a destination is given (the CLI's stdout is its answer, so it logs to stderr). */
export function createLogger(options: { service: string; level: string; destination?: DestinationStream }): Logger {
  return pino(
    {
      level: options.level,
      base: { service: options.service, pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: SECRET_PATHS, censor: REDACTED },
      // A driver's error message may quote a connection string, password included.
      serializers: { err: redactedError },
      hooks: { streamWrite: withUniqueKeys },
    },
    options.destination ?? pino.destination(1),
  );
}

function redactedError(err: unknown): unknown {
  const serialized: unknown = pino.stdSerializers.err(err instanceof Error ? err : new Error(String(err)));
  return JSON.parse(redactSecrets(JSON.stringify(serialized)));
}
