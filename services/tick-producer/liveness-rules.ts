/**
 * Host liveness as a pure judgement over what the database says (tested table-driven):
 * `unreachable` when no report was received for HOST_UNREACHABLE_AFTER intervals,
 * `failing` when the last HOST_FAILING_AFTER periodic syncs failed or were skipped,
 * `healthy` otherwise. Every time is the database's clock of receipt; an agent's own
 * stamps never count. Silence counts from when the host began to be judged at the
 * earliest (a host just enabled is not unreachable for what it did while disabled).
 *
 * Mass silence: when more than a share of the reachable hosts (and at least a minimum
 * number) fall silent together, the report path is down, not the fleet: none of them is
 * declared unreachable, and the judgement says so. Hosts report at different moments of an
 * interval, so when the report path goes down their silences start up to an interval apart:
 * the first to reach the limit must not be judged alone. The count therefore takes every host
 * that has missed reports and is within an interval of the limit (going silent), not only
 * those at it.
 */
import type { LivenessState } from '../../shared/messages/host-liveness.ts';

export interface LivenessSettings {
  intervalMs: number;
  failingAfterSyncs: number;
  unreachableAfterIntervals: number;
  reportPathSilentFraction: number;
  reportPathSilentMinHosts: number;
}

export interface HostLivenessInput {
  host: string;
  /** The stored judgement; undefined for a host not judged before (it starts healthy). */
  current: { state: LivenessState; trackedSinceMs: number } | undefined;
  /** What was received from the host; undefined if nothing ever was. */
  receipt: { lastReceivedAtMs: number; consecutiveFailures: number } | undefined;
}

export interface HostJudgement {
  host: string;
  state: LivenessState;
  previous: LivenessState;
  /** Not judged before: stored as healthy first (previous is `healthy`). */
  isNew: boolean;
  reason: string;
}

export interface LivenessJudgement {
  hosts: HostJudgement[];
  /** Hosts silent past the threshold that were not unreachable already. */
  newlySilent: number;
  /** Those and the reachable hosts within an interval of the threshold, having missed reports. */
  goingSilent: number;
  /** Hosts that were not unreachable already. */
  reachable: number;
  reportPathSilent: boolean;
}

export function judgeLiveness(inputs: readonly HostLivenessInput[], settings: LivenessSettings, nowMs: number): LivenessJudgement {
  const silenceLimitMs = settings.unreachableAfterIntervals * settings.intervalMs;
  // An interval short of the limit, but past one and a half intervals: a host that reports every interval is never that quiet.
  const goingSilentMs = Math.min(silenceLimitMs, Math.max(silenceLimitMs - settings.intervalMs, 1.5 * settings.intervalMs));
  const looks = inputs.map((input) => {
    const previous = input.current?.state ?? 'healthy';
    const heardAtMs = Math.max(input.receipt?.lastReceivedAtMs ?? Number.NEGATIVE_INFINITY, input.current?.trackedSinceMs ?? nowMs);
    const silentMs = nowMs - heardAtMs;
    const failures = input.receipt?.consecutiveFailures ?? 0;
    return { input, previous, silentMs, silent: silentMs >= silenceLimitMs, failing: failures >= settings.failingAfterSyncs, failures };
  });
  const reachable = looks.filter((look) => look.previous !== 'unreachable').length;
  const newlySilent = looks.filter((look) => look.silent && look.previous !== 'unreachable').length;
  const goingSilent = looks.filter((look) => look.silentMs >= goingSilentMs && look.previous !== 'unreachable').length;
  const reportPathSilent = newlySilent > 0 && goingSilent >= settings.reportPathSilentMinHosts && goingSilent > settings.reportPathSilentFraction * reachable;

  const hosts = looks.map(({ input, previous, silentMs, silent, failing, failures }): HostJudgement => {
    const silence = `no report received for ${Math.round(silentMs / 1000)} s (limit ${settings.unreachableAfterIntervals} intervals)`;
    const excused = silent && reportPathSilent && previous !== 'unreachable';
    const [state, reason]: [LivenessState, string] =
      silent && !excused
        ? ['unreachable', silence]
        : failing
          ? ['failing', `last ${failures} periodic syncs failed or were skipped (limit ${settings.failingAfterSyncs})`]
          : ['healthy', excused ? `${silence}, like most hosts: the report path is down` : 'reports received, the last periodic syncs did not all fail'];
    return { host: input.host, state, previous, isNew: input.current === undefined, reason };
  });
  return { hosts, newlySilent, goingSilent, reachable, reportPathSilent };
}
