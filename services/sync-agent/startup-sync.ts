/**
 * An agent that starts looks at each of its hosts at once, as an informer lists before it
 * watches: lifecycle events pending in a dead agent's debouncer died with it, and the
 * host's next tick may be a whole interval away. A host whose libvirt connection comes
 * back (its event watcher reconnected after losing it) is looked at again for the same
 * reason: the events of the gap were never delivered. Each look starts at a random moment
 * within `windowMs`, so an agent serving many hosts, or a fleet of agents restarted
 * together, does not send every host's reads to the database at the same instant; the
 * looks then queue with the ticks' host syncs for the agent's limiter.
 */
import { coerceError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import type { HostSync } from './host-sync.ts';

export interface StartupSync {
  /** Schedules a look at every host (at start). */
  start(): void;
  /** Schedules a look at one host (its libvirt connection is back). */
  resync(host: string): void;
  /** Cancels the looks not yet started. */
  stop(): void;
}

export function createStartupSync(options: {
  /** Off (AGENT_STARTUP_SYNC=false): hosts wait for their ticks. */
  enabled: boolean;
  hosts: readonly string[];
  windowMs: number;
  /** Runs a whole-host sync through the agent's limiter and in-flight tracking. */
  syncHost: (request: Parameters<HostSync['syncHost']>[0]) => Promise<unknown>;
  log: Logger;
  random?: () => number;
}): StartupSync {
  const log = options.log.child({ component: 'startup-sync' });
  const random = options.random ?? Math.random;
  const timers = new Set<NodeJS.Timeout>();
  let stopped = !options.enabled;

  const schedule = (host: string, reason: 'agent started' | 'libvirt reconnected'): void => {
    if (stopped) return;
    const delayMs = Math.floor(random() * options.windowMs);
    const timer = setTimeout(() => {
      timers.delete(timer);
      // Not a tick: no tick id; reported as an on-demand sync.
      options.syncHost({ host, tickId: null, cycle: 0, trigger: 'manual' }).catch((err: unknown) => {
        log.warn({ err: coerceError(err), host, reason }, 'startup host sync not completed, the next tick covers it');
      });
    }, delayMs);
    timers.add(timer);
  };

  return {
    start() {
      if (stopped) return;
      for (const host of options.hosts) schedule(host, 'agent started');
      log.info({ hosts: options.hosts.length, windowMs: options.windowMs }, 'syncing every host once, spread over the window');
    },
    resync(host) {
      schedule(host, 'libvirt reconnected');
    },
    stop() {
      stopped = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
    },
  };
}
