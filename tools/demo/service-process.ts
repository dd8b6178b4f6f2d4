/**
 * Runs one virtsync service as a child process, the way an operator would (its own
 * main.ts, configured by environment), with its JSON log lines kept in a file and
 * offered to a listener.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseJsonLine } from '../json-line.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// Compiled (dist/tools/demo/*.js, as in the image) the services are compiled beside it;
// from source (tsx) they are TypeScript.
const COMPILED = import.meta.url.endsWith('.js');

function serviceArguments(service: ServiceName): string[] {
  return COMPILED ? [path.join(ROOT, 'services', service, 'main.js')] : ['--import', 'tsx', path.join(ROOT, 'services', service, 'main.ts')];
}

export type ServiceName = 'tick-producer' | 'sync-agent' | 'state-writer' | 'audit-subscriber';

export interface ServiceProcess {
  name: string;
  logFile: string;
  /** The child's process id (its CPU time is in /proc/<pid>/stat). */
  pid: number | undefined;
  /** Resolves with the exit code once the process has exited. */
  exited: Promise<number | null>;
  /** SIGTERM, then wait for the exit; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** Sends a signal (SIGKILL for a crash) and waits for the exit. */
  kill(signal: NodeJS.Signals): Promise<number | null>;
}

export function startServiceProcess(options: {
  service: ServiceName;
  /** Distinguishes several processes of one service in log file names. */
  instance?: string;
  env: Record<string, string>;
  logDir: string;
  onLogLine?: (entry: Record<string, unknown>) => void;
}): ServiceProcess {
  const name = options.instance === undefined ? options.service : `${options.service}-${options.instance}`;
  const logFile = path.join(options.logDir, `${name}.log`);
  const child: ChildProcess = spawn(process.execPath, serviceArguments(options.service), {
    cwd: ROOT,
    // The child needs PATH and friends; its own settings come from options.env. Several
    // services share this machine, so each takes a free HTTP port unless told otherwise.
    env: { ...process.env, HTTP_PORT: '0', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = createWriteStream(logFile);
  child.stderr?.pipe(log, { end: false });
  createInterface({ input: child.stdout! }).on('line', (line) => {
    log.write(`${line}\n`);
    // A line that is not JSON (a crash trace) is in the log file for the operator.
    const entry = parseJsonLine(line);
    if (entry !== undefined) options.onLogLine?.(entry);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  void exited.then(() => log.end());
  return {
    name,
    logFile,
    pid: child.pid,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
    async kill(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
