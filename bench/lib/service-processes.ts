/**
 * virtsync services as child processes for the benchmarks (through the demo's
 * startServiceProcess): learns each one's pid from its log lines (pino binds it), lets
 * the benchmark wait for a log message, counts warnings and errors, and stops it at
 * cleanup (SIGTERM, then SIGKILL if it does not exit in time).
 */
import { type ServiceName, type ServiceProcess, startServiceProcess } from '../../tools/demo/service-process.ts';
import type { BenchContext } from './harness.ts';

const STOP_GRACE_MS = 15_000;

export interface BenchService {
  name: string;
  process: ServiceProcess;
  pid(): number | undefined;
  /** Resolves at the first log line matching; rejects if the process exits or the time runs out. */
  waitForLog(what: string, match: (entry: Record<string, unknown>) => boolean, timeoutMs: number): Promise<void>;
  warnings: number;
  errors: number;
  /** The last error or fatal message, for the report. */
  lastError: string | undefined;
  stop(): Promise<number | null>;
}

export function startBenchService(
  context: BenchContext,
  options: {
    service: ServiceName;
    instance?: string;
    env: Record<string, string>;
    logDir: string;
    onLogLine?: (entry: Record<string, unknown>) => void;
  },
): BenchService {
  let pid: number | undefined;
  const waiters: Array<{ match: (entry: Record<string, unknown>) => boolean; resolve: () => void }> = [];
  const service: BenchService = {
    name: options.instance === undefined ? options.service : `${options.service}-${options.instance}`,
    process: undefined as unknown as ServiceProcess,
    pid: () => pid,
    waitForLog(what, match, timeoutMs) {
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${service.name}: no "${what}" within ${timeoutMs} ms (log: ${service.process.logFile})`)), timeoutMs);
        const done = (): void => {
          clearTimeout(timer);
          resolve();
        };
        waiters.push({ match, resolve: done });
        void service.process.exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`${service.name} exited with ${code} before "${what}" (log: ${service.process.logFile})`));
        });
      });
    },
    warnings: 0,
    errors: 0,
    lastError: undefined,
    async stop() {
      let timer: NodeJS.Timeout | undefined;
      const forced = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), STOP_GRACE_MS);
      });
      const outcome = await Promise.race([service.process.stop(), forced]);
      clearTimeout(timer);
      if (outcome === 'timeout') return service.process.kill('SIGKILL');
      return outcome;
    },
  };
  service.process = startServiceProcess({
    service: options.service,
    instance: options.instance,
    // Several services share the machine: each takes a free port for its HTTP endpoints.
    env: { HTTP_PORT: '0', ...options.env },
    logDir: options.logDir,
    onLogLine: (entry) => {
      if (pid === undefined && typeof entry.pid === 'number') pid = entry.pid;
      const level = typeof entry.level === 'number' ? entry.level : 0;
      if (level >= 50) {
        service.errors++;
        service.lastError = String(entry.msg);
      } else if (level >= 40) service.warnings++;
      for (let i = waiters.length - 1; i >= 0; i--) {
        const waiter = waiters[i];
        if (waiter !== undefined && waiter.match(entry)) {
          waiters.splice(i, 1);
          waiter.resolve();
        }
      }
      options.onLogLine?.(entry);
    },
  });
  context.defer(`stop ${service.name}`, () => service.stop());
  return service;
}

/** Every running service's pid by name, for the /proc samplers. */
export function pidsOf(services: readonly BenchService[]): Map<string, number> {
  const pids = new Map<string, number>();
  for (const service of services) {
    const pid = service.pid();
    if (pid !== undefined) pids.set(service.name, pid);
  }
  return pids;
}
