/**
 * What a committed batch tells operators: metrics, the writer's log lines, each agent's
 * clock offset (measured, shown, never used to decide), and stale skips (each at debug,
 * summarised per host at warn when many).
 */
import type { StateWriterConfig } from '../../shared/config.ts';
import type { Logger } from '../../shared/logging.ts';
import type { HostObservations } from '../../shared/messages/observation.ts';
import { agentClockOffset, changesCommitted, changesProposed, unexpectedStops, writerBatchSize, writerCommitDuration, writerDecisions } from '../../shared/metrics.ts';
import { powerStateKey } from '../../shared/power-state.ts';
import { RULE_REASONS } from '../../shared/sync-rules.ts';
import type { BatchResult } from './apply-observations.ts';
import { isUnexpectedStop } from './unexpected-stop.ts';

/** How often one host's skew is logged at warn, at most. */
const SKEW_WARN_EVERY_MS = 5 * 60_000;

export function createBatchLog(config: Pick<StateWriterConfig, 'clockSkewWarnMs' | 'staleSkipsWarn'>, log: Logger) {
  const skewWarnedAt = new Map<string, number>();

  /** Each observing host's stamp against this writer's clock as its messages are taken for a batch. */
  const recordClockOffsets = (messages: readonly HostObservations[]): void => {
    const nowMs = Date.now();
    const offsets = new Map(messages.map((message) => [message.host, Date.parse(message.observedAt) - nowMs]));
    for (const [host, offsetMs] of offsets) {
      agentClockOffset.set({ host }, offsetMs / 1000);
      if (Math.abs(offsetMs) < config.clockSkewWarnMs || nowMs - (skewWarnedAt.get(host) ?? 0) < SKEW_WARN_EVERY_MS) continue;
      skewWarnedAt.set(host, nowMs);
      log.warn(
        { host, offsetMs, thresholdMs: config.clockSkewWarnMs },
        "agent's clock differs from the writer's (or its observations arrive late); ordering does not depend on it",
      );
    }
  };

  const recordStaleSkips = (result: BatchResult): void => {
    const byHost = new Map<string, Record<string, number>>();
    for (const { observation, rule } of result.stale) {
      log.debug({ instanceUuid: observation.instanceUuid, observingHost: observation.host, rule, reason: RULE_REASONS[rule] }, 'observation skipped as stale');
      const counts = byHost.get(observation.host) ?? {};
      counts[rule] = (counts[rule] ?? 0) + 1;
      byHost.set(observation.host, counts);
    }
    for (const [host, counts] of byHost) {
      const skipped = Object.values(counts).reduce((sum, count) => sum + count, 0);
      if (skipped >= config.staleSkipsWarn) log.warn({ host, skipped, byRule: counts }, 'many observations of one host skipped as stale in one batch');
    }
  };

  const recordCommitted = (result: BatchResult, durationMs: number): void => {
    const observations = Object.values(result.outcomes).reduce((sum, count) => sum + count, 0);
    writerBatchSize.observe(observations);
    writerCommitDuration.observe(durationMs / 1000);
    for (const [rule, count] of Object.entries(result.outcomes)) writerDecisions.inc({ rule }, count);
    for (const change of result.changes) {
      changesCommitted.inc({ power_state: powerStateKey(change.after.powerState) });
      if (isUnexpectedStop(change)) {
        unexpectedStops.inc({ power_state: powerStateKey(change.after.powerState) });
        // The fleet's news, not virtsync's trouble: the alert (VirtsyncInstancesStoppedUnexpectedly) is how operators hear of it.
        log.info({ instanceUuid: change.instanceUuid, host: change.host, powerState: powerStateKey(change.after.powerState) }, 'instance stopped unexpectedly');
      }
      if (change.rule === 'missing') {
        log.warn({ instanceUuid: change.instanceUuid, host: change.host }, 'instance in the database but unknown to the hypervisor, power state set to NOSTATE');
      }
    }
    for (const proposal of result.proposals) {
      changesProposed.inc({ power_state: powerStateKey(proposal.after.powerState) });
      // Every one is on the bus (`virtsync tail --proposed`); a first report-only cycle may propose thousands.
      log.debug({ instanceUuid: proposal.instanceUuid, host: proposal.host, rule: proposal.rule, powerState: powerStateKey(proposal.after.powerState) }, 'change proposed, not written (report-only)');
    }
    for (const { observation, rule } of result.notable) {
      log.info({ instanceUuid: observation.instanceUuid, observingHost: observation.host, rule, reason: RULE_REASONS[rule] }, 'observation left the row unchanged');
    }
    recordStaleSkips(result);
    log.info({ observations, changes: result.changes.length, proposals: result.proposals.length, outcomes: result.outcomes, durationMs }, 'batch committed');
  };

  return { recordClockOffsets, recordCommitted };
}
