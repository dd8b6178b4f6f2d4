/**
 * Runs the `virtsync` CLI as an operator would: a child process of its own
 * (`node --import tsx tools/cli/main.ts …`), configured by environment only.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../../tools/wait-for.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MAIN = path.join(ROOT, 'tools/cli/main.ts');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunningCli {
  readonly stdout: string;
  readonly stderr: string;
  /** Polls until stderr contains `text` (or the process exits, or the deadline passes). */
  waitForStderr(text: string, timeoutMs?: number): Promise<void>;
  /** Resolves when the process exits. */
  exited: Promise<CliResult>;
  kill(signal: NodeJS.Signals): void;
}

export function startCli(args: readonly string[], env: Record<string, string>): RunningCli {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    cwd: ROOT,
    // PATH and friends from the test; the CLI's settings from `env` (LOG_LEVEL pinned, so a
    // value in the developer's shell cannot fail the configuration).
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<CliResult>((resolve) => {
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
  let done = false;
  void exited.then(() => {
    done = true;
  });
  return {
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    async waitForStderr(text, timeoutMs = 15_000) {
      await waitFor(`CLI stderr to contain ${JSON.stringify(text)}`, () => stderr.includes(text) || done, { timeoutMs });
      if (!stderr.includes(text)) throw new Error(`CLI exited before printing ${JSON.stringify(text)}; stderr: ${stderr}`);
    },
    exited,
    kill(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
}

/** Runs the CLI to completion; kills it (and fails) if it takes longer than `timeoutMs`. */
export async function runCli(args: readonly string[], env: Record<string, string>, timeoutMs = 30_000): Promise<CliResult> {
  const cli = startCli(args, env);
  const timer = setTimeout(() => cli.kill('SIGKILL'), timeoutMs);
  try {
    const result = await cli.exited;
    if (result.code === null) throw new Error(`virtsync ${args.join(' ')} killed after ${timeoutMs} ms; stderr: ${result.stderr}`);
    return result;
  } finally {
    clearTimeout(timer);
  }
}
