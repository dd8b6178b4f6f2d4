/**
 * What every service's main does the same way: load config (exit 2 naming every bad
 * variable), create the root logger, start, and stop once on SIGINT/SIGTERM. The first
 * signal drains; a second one, or the shutdown deadline, exits non-zero at once.
 */
import type { z } from 'zod';
import { type CommonConfig, loadConfig } from './config.ts';
import { coerceError, ConfigError } from './errors.ts';
import { type ReadinessChecks, startHttpServer } from './http-server.ts';
import { createLogger, type Logger } from './logging.ts';

export interface RunningService {
  /** Stop intake, finish in-flight work, close connections. Safe to call twice. */
  stop(): Promise<void>;
  /** What /readyz reports: each named check must hold (connected, breakers closed). */
  checks?: ReadinessChecks;
}

export async function runService<S extends z.ZodType<CommonConfig>>(options: {
  service: string;
  env: S;
  start: (context: { config: Readonly<z.output<S>>; log: Logger }) => Promise<RunningService>;
}): Promise<void> {
  let config: Readonly<z.output<S>>;
  try {
    config = loadConfig(options.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${options.service}: ${err.message}\n`);
    process.exit(2);
  }
  const log = createLogger({ service: options.service, level: config.logLevel });

  let running: RunningService;
  let stopping = false;
  let http: Awaited<ReturnType<typeof startHttpServer>>;
  try {
    running = await options.start({ config, log });
    const checks = running.checks ?? (() => ({}));
    http = await startHttpServer({ port: config.httpPort, log, checks: () => ({ ...checks(), running: !stopping }) });
  } catch (err) {
    log.fatal({ err: coerceError(err) }, 'service failed to start');
    process.exit(1);
  }
  log.info('service started');

  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn({ signal }, 'second signal, exiting at once');
      process.exit(130);
    }
    stopping = true;
    log.info({ signal, timeoutMs: config.shutdownTimeoutMs }, 'shutting down');
    const deadline = setTimeout(() => {
      log.error({ timeoutMs: config.shutdownTimeoutMs }, 'shutdown deadline passed, exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    deadline.unref();
    running.stop().then(
      async () => {
        await http.close();
        log.info('service stopped');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err: coerceError(err) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}
