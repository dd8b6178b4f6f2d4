/**
 * Opening a host's libvirt connection while its daemon restarts (a package upgrade, an
 * operator's restart): for a second or two nothing listens on the socket. The open is tried
 * again with a short backoff for up to `waitMs`, so a tick or an event that falls in that
 * gap reads the host once the daemon is back instead of failing; a daemon still away after
 * `waitMs` fails the open, naming how long it was waited for. Any other failure fails at once.
 */
import { isDaemonAway } from '../../native/libvirt-bulk/index.ts';
import { coerceError } from '../../shared/errors.ts';
import { type Backoff, retryWithBackoff } from '../../shared/retry.ts';

/** A restarting libvirtd is back within a second or two: look often, but not in a spin. */
const RESTART_BACKOFF: Backoff = { initialDelayMs: 100, maxDelayMs: 1_000 };

/** What was opened, and how long the open waited for the daemon (0 when it was there). */
export interface Opened<T> {
  opened: T;
  waitedMs: number;
}

/** `waitMs` 0: no waiting, the open fails as soon as the daemon is found away. */
export async function openWaitingOutRestart<T>(open: () => Promise<T>, options: { waitMs: number }): Promise<Opened<T>> {
  const started = Date.now();
  let waited = false;
  try {
    const opened = await retryWithBackoff(open, {
      shouldRetry: (err) => options.waitMs > 0 && isDaemonAway(err),
      onRetry: () => {
        waited = true;
      },
      // The wait in progress ends at the bound; the open after it is the last.
      signal: AbortSignal.timeout(options.waitMs),
      backoff: RESTART_BACKOFF,
    });
    return { opened, waitedMs: waited ? Date.now() - started : 0 };
  } catch (err) {
    if (!waited || !isDaemonAway(err)) throw err;
    throw new Error(`${coerceError(err).message} (still away after ${Date.now() - started} ms)`, { cause: err });
  }
}
