import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../shared/logging.ts';

/** Silent unless TEST_LOG_LEVEL asks otherwise (e.g. TEST_LOG_LEVEL=debug npm test). */
// A test-only switch, deliberately outside shared/config.ts: services never read it.
export const testLogger = createLogger({ service: 'test', level: process.env.TEST_LOG_LEVEL ?? 'silent' });

/** A logger whose lines (debug and up) the test can read back. */
export function captureLogger(): { logger: Logger; lines(): string[] } {
  const lines: string[] = [];
  const destination = new Writable({
    write(line: Buffer, _encoding, done) {
      lines.push(line.toString());
      done();
    },
  });
  return { logger: createLogger({ service: 'test', level: 'debug', destination }), lines: () => lines };
}
