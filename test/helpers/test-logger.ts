import { createLogger } from '../../shared/logging.ts';

/** Silent unless TEST_LOG_LEVEL asks otherwise (e.g. TEST_LOG_LEVEL=debug npm test). */
// A test-only switch, deliberately outside shared/config.ts: services never read it.
export const testLogger = createLogger({ service: 'test', level: process.env.TEST_LOG_LEVEL ?? 'silent' });
