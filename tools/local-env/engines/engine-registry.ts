/**
 * Engines a test starts for itself (RabbitMQ nodes, PostgreSQL clusters) are registered
 * here with a synchronous teardown, so they are removed even when the test process dies
 * on an uncaught error or a signal. Every engine's name carries the pid of the process
 * that owns it: removeLeftovers() removes the engines of owners that no longer run (a
 * test killed with SIGKILL), and never those of another live process on the machine.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Where engines keep their files: one directory per engine, named like the engine. */
export const ENGINES_DIR = path.join(os.tmpdir(), 'virtsync-engines');

const NAME_PATTERN = /^vse(\d+)x[0-9a-f]+$/;

/** A name no other engine on the machine has: `vse<owner pid>x<random>` (valid for Erlang nodes and PostgreSQL clusters). */
export function uniqueEngineName(): string {
  return `vse${process.pid}x${randomBytes(3).toString('hex')}`;
}

export function engineDir(name: string): string {
  const dir = path.join(ENGINES_DIR, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

const teardowns = new Map<string, () => void>();
let hooked = false;

function runTeardowns(): void {
  for (const [name, teardown] of [...teardowns].reverse()) {
    teardowns.delete(name);
    try {
      teardown();
    } catch (err) {
      process.stderr.write(`engines: removing ${name} failed: ${String(err)}\n`);
    }
  }
}

/** Runs `teardown` when the process exits unless unregistered first (by a normal remove()). */
export function registerTeardown(name: string, teardown: () => void): void {
  teardowns.set(name, teardown);
  if (hooked) return;
  hooked = true;
  process.once('exit', runTeardowns);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      runTeardowns();
      process.exit(128 + (os.constants.signals[signal] ?? 0));
    });
  }
}

export function unregisterTeardown(name: string): void {
  teardowns.delete(name);
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err instanceof Error && 'code' in err && err.code === 'EPERM';
  }
};

/** SIGKILL every pid recorded in `<dir>/*.pid`. */
export function killRecordedPids(dir: string): void {
  for (const file of readdirSync(dir, { withFileTypes: true }).filter((entry) => entry.isFile() && entry.name.endsWith('.pid'))) {
    const pid = Number(readFileSync(path.join(dir, file.name), 'utf8').trim());
    if (Number.isInteger(pid) && pid > 1 && alive(pid)) process.kill(pid, 'SIGKILL');
  }
}

/** Removes the engines left by test processes that died without cleaning up. */
export function removeLeftovers(): string[] {
  const removed: string[] = [];
  const orphaned = (name: string): boolean => {
    const owner = NAME_PATTERN.exec(name)?.[1];
    return owner !== undefined && Number(owner) !== process.pid && !alive(Number(owner));
  };
  mkdirSync(ENGINES_DIR, { recursive: true });
  for (const entry of readdirSync(ENGINES_DIR, { withFileTypes: true })) {
    if (!entry.isDirectory() || !orphaned(entry.name)) continue;
    const dir = path.join(ENGINES_DIR, entry.name);
    // A cluster's nodes keep their pid files in subdirectories.
    for (const sub of [dir, ...readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => path.join(dir, e.name))]) killRecordedPids(sub);
    rmSync(dir, { recursive: true, force: true });
    removed.push(entry.name);
  }
  const clusters = execFileSync('pg_lsclusters', ['--no-header'], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields[0] === '15' && fields[1] !== undefined && orphaned(fields[1]));
  for (const [version, name] of clusters) {
    if (version === undefined || name === undefined) continue;
    execFileSync('pg_dropcluster', [version, name, '--stop'], { stdio: 'ignore' });
    rmSync(`/var/log/postgresql/postgresql-${version}-${name}.log`, { force: true });
    removed.push(name);
  }
  return removed;
}
