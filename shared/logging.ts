/**
 * One pino root per process. Services bind `{ service }` here, `{ component }` per module
 * and `{ host }` / `{ msgId }` per unit of work; data goes in fields, never in the message.
 */
import { type DestinationStream, pino, type Logger } from 'pino';
import { REDACTED, redactSecrets } from './redact.ts';

export type { Logger };

/** Fields that are secrets wherever they appear: connection strings and passwords (TLS keys are only ever read into sockets). */
const SECRET_PATHS = ['databaseUrl', 'amqpUrl', 'managementUrl', 'password'].flatMap((field) => [field, `*.${field}`]);

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
    },
    options.destination ?? pino.destination(1),
  );
}

function redactedError(err: unknown): unknown {
  const serialized: unknown = pino.stdSerializers.err(err instanceof Error ? err : new Error(String(err)));
  return JSON.parse(redactSecrets(JSON.stringify(serialized)));
}
