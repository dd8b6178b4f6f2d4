/**
 * Supervises `virsh -c <uri> event --all --loop --timestamp` as the source of libvirt
 * lifecycle events (the bindings have no event API). If virsh exits it is restarted with
 * capped exponential backoff; the backoff resets once a run has lasted a while. Events are
 * an optimisation: while the watcher is down, ticks still converge.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Logger } from '../../shared/logging.ts';
import { lifecycleWatcherUp } from '../../shared/metrics.ts';
import { type LifecycleEvent, parseVirshEventLine } from './virsh-event-line.ts';

const MAX_BACKOFF_MS = 30_000;
const HEALTHY_RUN_MS = 10_000;
const RECONNECTED_AFTER_MS = 1_000;

export interface LifecycleWatcher {
  stop(): Promise<void>;
}

export function startLifecycleWatcher(options: {
  host: string;
  uri: string;
  log: Logger;
  onEvent: (event: LifecycleEvent) => void;
  /** A restarted watcher has stayed connected a moment: the events of the gap were missed. */
  onReconnected?: () => void;
  /** The virsh binary; tests may point elsewhere. */
  virsh?: string;
}): LifecycleWatcher {
  const log = options.log.child({ component: 'lifecycle-watcher' });
  let child: ChildProcess | undefined;
  let stopped = false;
  let backoffMs = 500;
  let restartTimer: NodeJS.Timeout | undefined;
  let restarts = 0;
  const up = lifecycleWatcherUp.labels({ host: options.host });

  const start = (): void => {
    const startedAt = Date.now();
    const proc = spawn(options.virsh ?? 'virsh', ['-q', '-c', options.uri, 'event', '--all', '--loop', '--timestamp'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      // The parser reads virsh's English words: a translated virsh would print others.
      env: { ...process.env, LC_ALL: 'C' },
    });
    child = proc;
    // virsh exits at once when it cannot connect: one that is still running after a moment is connected.
    if (restarts > 0) {
      restartTimer = setTimeout(() => {
        if (child === proc && !stopped) options.onReconnected?.();
      }, RECONNECTED_AFTER_MS);
    }
    up.set(1);
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      const event = parseVirshEventLine(line);
      if (event !== null) options.onEvent(event);
    });
    let stderr = '';
    proc.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-500);
    });
    proc.once('error', (err) => log.warn({ err }, 'could not start virsh event watcher'));
    proc.once('close', (code, signal) => {
      child = undefined;
      up.set(0);
      if (stopped) return;
      if (Date.now() - startedAt > HEALTHY_RUN_MS) backoffMs = 500;
      log.warn({ code, signal, stderr: stderr.trim(), restartInMs: backoffMs }, 'lifecycle event watcher exited, restarting');
      restarts++;
      restartTimer = setTimeout(start, backoffMs);
      backoffMs = Math.min(MAX_BACKOFF_MS, backoffMs * 2);
    });
    log.info({ uri: options.uri, virshPid: proc.pid }, 'watching libvirt lifecycle events');
  };

  start();
  return {
    async stop() {
      stopped = true;
      clearTimeout(restartTimer);
      const current = child;
      if (current === undefined || current.exitCode !== null) return;
      const closed = new Promise<void>((resolve) => current.once('close', () => resolve()));
      current.kill('SIGTERM');
      await closed;
    },
  };
}
