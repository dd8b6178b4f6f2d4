/**
 * One pino root per process. Services bind `{ service }` here, `{ component }` per module
 * and `{ host }` / `{ msgId }` per unit of work; data goes in fields, never in the message.
 */
import { type DestinationStream, pino, type Logger } from 'pino';

export type { Logger };

/** JSON lines to stdout, unless a destination is given (the CLI's stdout is its answer, so it logs to stderr). */
export function createLogger(options: { service: string; level: string; destination?: DestinationStream }): Logger {
  return pino(
    {
      level: options.level,
      base: { service: options.service, pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Connection strings carry passwords.
      redact: { paths: ['*.databaseUrl', '*.amqpUrl', 'databaseUrl', 'amqpUrl'], censor: '[redacted]' },
    },
    options.destination ?? pino.destination(1),
  );
}
