/**
 * What every benchmark does the same way: print a header with the machine, run the
 * scenario under a hard deadline, print `RESULT <name> <value> <unit>` lines, and always
 * clean up what it made (last made, first undone) before exiting on its own, also on
 * SIGINT/SIGTERM or when the deadline passes.
 */
import os from 'node:os';
import { coerceError } from '../../shared/errors.ts';

export interface BenchContext {
  /** Registers an undo step; steps run in reverse order of registration. */
  defer(label: string, undo: () => Promise<unknown> | unknown): void;
  /** One machine-readable headline figure. */
  result(name: string, value: number, unit: string): void;
  /** A progress line (stderr, so stdout stays the report). */
  progress(line: string): void;
  /** Milliseconds left before the deadline. */
  remainingMs(): number;
}

export interface Machine {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  loadAverage: string;
}

export function machine(): Machine {
  return {
    cores: os.cpus().length,
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    loadAverage: os.loadavg().map((load) => load.toFixed(2)).join(' '),
  };
}

const UNDO_TIMEOUT_MS = 30_000;

export async function runBench(
  options: { name: string; deadlineMs: number; inputs: Record<string, string | number> },
  body: (context: BenchContext) => Promise<void>,
): Promise<never> {
  const started = Date.now();
  const undo: Array<{ label: string; fn: () => Promise<unknown> | unknown }> = [];
  const m = machine();
  console.log(`# bench ${options.name}`);
  console.log(`date ${new Date(started).toISOString()}`);
  console.log(`machine: ${m.cores} cores (${m.cpuModel}), ${m.memoryGiB} GiB memory, node ${m.node}, load average ${m.loadAverage}`);
  console.log(`inputs: ${Object.entries(options.inputs).map(([key, value]) => `${key}=${value}`).join(', ')}`);
  console.log('');

  let cleaning: Promise<void> | undefined;
  const cleanUp = (): Promise<void> => {
    cleaning ??= (async () => {
      for (const step of undo.reverse()) {
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([
            Promise.resolve().then(step.fn),
            new Promise((_, reject) => {
              timer = setTimeout(() => reject(new Error(`timed out after ${UNDO_TIMEOUT_MS} ms`)), UNDO_TIMEOUT_MS);
            }),
          ]);
        } catch (err) {
          process.stderr.write(`cleanup "${step.label}" failed: ${coerceError(err).message}\n`);
        } finally {
          clearTimeout(timer);
        }
      }
    })();
    return cleaning;
  };

  const abort = (reason: string, code: number): void => {
    process.stderr.write(`\n${options.name}: ${reason}, cleaning up\n`);
    // A cleanup that hangs must not keep the process alive.
    setTimeout(() => process.exit(code), UNDO_TIMEOUT_MS * 2).unref();
    void cleanUp().then(() => process.exit(code));
  };
  // An error event nobody listens to (a closed channel, say) must not skip the cleanup.
  process.once('uncaughtException', (err) => abort(`uncaught ${err.stack ?? String(err)}`, 1));
  process.once('unhandledRejection', (reason) => abort(`unhandled rejection ${coerceError(reason).stack ?? String(reason)}`, 1));
  process.once('SIGINT', () => abort('interrupted', 130));
  process.once('SIGTERM', () => abort('terminated', 143));
  const deadline = setTimeout(() => abort(`deadline of ${options.deadlineMs} ms passed`, 1), options.deadlineMs);

  const context: BenchContext = {
    defer: (label, fn) => undo.push({ label, fn }),
    result: (name, value, unit) => console.log(`RESULT ${name} ${formatResult(value)} ${unit}`),
    progress: (line) => process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${line}\n`),
    remainingMs: () => started + options.deadlineMs - Date.now(),
  };

  let code = 0;
  try {
    await body(context);
  } catch (err) {
    code = 1;
    process.stderr.write(`\n${options.name} failed: ${coerceError(err).stack ?? String(err)}\n`);
  }
  await cleanUp();
  clearTimeout(deadline);
  console.log(`\n(${options.name}: ${((Date.now() - started) / 1000).toFixed(1)} s wall, exit ${code})`);
  process.exit(code);
}

function formatResult(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  return abs >= 100 ? value.toFixed(0) : abs >= 10 ? value.toFixed(1) : value.toFixed(2);
}
