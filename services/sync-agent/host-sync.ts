/**
 * The agent's two ways to look: a whole host on a tick (read its rows, read its
 * hypervisor, compare, publish the discrepancies as one observations message (split only
 * past MAX_OBSERVATIONS_PER_MESSAGE), one event per unknown domain, then a report), and
 * one domain after a lifecycle event. Everything is confirmed by the broker before the
 * returned promise resolves.
 */
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { publishJson, type Publisher } from '../../shared/bus/publisher.ts';
import { Exchange, reportRoutingKey } from '../../shared/bus/topology.ts';
import type { Database } from '../../shared/db/database.ts';
import { readHostInstances, readLiveInstance } from '../../shared/db/instances.ts';
import type { Breaker } from '../../shared/breaker.ts';
import { CircuitOpenError, coerceError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import { countMismatches, discrepanciesFound, hostSyncDuration, instancesCompared, observationsPublished } from '../../shared/metrics.ts';
import { encodeMessage } from '../../shared/messages/codec.ts';
import { SCHEMA_VERSION } from '../../shared/messages/fields.ts';
import { type HostReport, hostReportSchema } from '../../shared/messages/host-report.ts';
import type { Tick } from '../../shared/messages/tick.ts';
import type { LookOrder } from '../../shared/sync-rules.ts';
import type { AgentPublications } from './agent-publications.ts';
import { compareHost, expectedRowOf, type HostComparison, needsObservation } from './host-comparison.ts';
import type { HypervisorReader } from './hypervisor-reader.ts';
import type { LookClock } from './look-clock.ts';
import { stateReasonFields } from './state-reason.ts';

export interface HostSync {
  /** A tick's sync, or one the agent starts itself (no tick id). */
  syncHost(request: Pick<Tick, 'host' | 'cycle' | 'trigger'> & { tickId: string | null }): Promise<HostReport>;
  /** After a lifecycle event: observe one domain now. Returns what was published. */
  syncDomain(host: string, domainName: string): Promise<'observation' | 'unknown' | 'in-sync' | 'gone'>;
}

export function createHostSync(deps: {
  db: Kysely<Database>;
  publisher: Publisher;
  readerFor: (host: string) => HypervisorReader;
  /** Guards every database read of the agent. */
  dbBreaker: Breaker;
  lookClock: LookClock;
  /** The agent's wall clock, for stamps shown to operators (ordering never uses it). */
  now: () => number;
  /** The agent's broker user, stamped on the host report as AMQP user_id (the writer checks it against the host). */
  publishAs?: string | undefined;
  /** Observations and unknown domains, stamped the same way. */
  publish: AgentPublications;
  log: Logger;
}): HostSync {
  const publishObservations = deps.publish.observations;
  const publishUnknown = deps.publish.unknownDomain;

  return {
    async syncHost({ host, tickId, cycle, trigger }) {
      const log = deps.log.child({ host, tickId });
      const started = Date.now();
      const startedAt = new Date(deps.now()).toISOString();
      let comparison: HostComparison | undefined;
      let look: LookOrder | undefined;
      let error: string | null = null;
      let skipped = false;
      let published = 0;
      try {
        // What the hypervisor is compared against is read first: a cloud write after this read wins at the writer.
        const [rows, epoch] = await Promise.all([deps.dbBreaker.run(() => readHostInstances(deps.db, host)), deps.lookClock.epoch()]);
        const observedAt = new Date(deps.now()).toISOString();
        const hypervisor = await deps.readerFor(host).read();
        look = deps.lookClock.next(epoch);
        const currentLook = look;
        comparison = compareHost(rows, hypervisor);
        if (comparison.dbCount !== comparison.hypervisorCount) {
          log.warn({ dbCount: comparison.dbCount, hypervisorCount: comparison.hypervisorCount }, 'instance count differs between database and hypervisor');
        }
        if (comparison.unknownUuids.length > 0) {
          log.warn({ unknown: comparison.unknownUuids.length, sample: comparison.unknownUuids.slice(0, 5) }, 'hypervisor runs domains no row places here');
        }
        const observations = comparison.discrepancies.map(({ uuid, powerState, expected }) => ({
          instanceUuid: uuid,
          host,
          powerState,
          expected,
          ...stateReasonFields(expected, powerState, hypervisor.reasons.get(uuid)),
          observedAt,
          look: currentLook,
          trigger: 'tick' as const,
          tickId,
        }));
        published = observations.length;
        await Promise.all([
          publishObservations(observations),
          ...comparison.unknownUuids.map((uuid) =>
            publishUnknown({ host, instanceUuid: uuid, powerState: hypervisor.states.get(uuid) ?? null, observedAt, trigger: 'tick' }),
          ),
        ]);
      } catch (err) {
        error = coerceError(err).message;
        skipped = err instanceof CircuitOpenError;
        if (skipped) log.warn({ reason: error }, 'host sync skipped, the next tick retries');
        else log.error({ err: coerceError(err) }, 'host sync failed, the next tick retries');
      }

      const report: HostReport = {
        schemaVersion: SCHEMA_VERSION,
        host,
        tickId,
        cycle,
        trigger,
        startedAt,
        durationMs: Date.now() - started,
        outcome: error === null ? 'synced' : skipped ? 'skipped' : 'failed',
        error,
        dbCount: comparison?.dbCount ?? 0,
        hypervisorCount: comparison?.hypervisorCount ?? 0,
        compared: comparison?.compared ?? 0,
        drifted: comparison?.drifted ?? 0,
        missing: comparison?.missing ?? 0,
        unknown: comparison?.unknownUuids.length ?? 0,
        published: error === null ? published : 0,
        look,
      };
      recordHostMetrics(report);
      await publishJson(deps.publisher, Exchange.reports, reportRoutingKey(host), encodeMessage(hostReportSchema, report), {
        messageId: randomUUID(),
        type: 'host-report',
        userId: deps.publishAs,
      });
      if (error === null) {
        const { dbCount, compared, drifted, missing, unknown, durationMs } = report;
        log.info({ dbCount, compared, drifted, missing, unknown, durationMs }, 'host synced');
      }
      return report;
    },

    async syncDomain(host, domainName) {
      const reader = deps.readerFor(host);
      // The event names the domain; its UUID finds the row, which is read before the state that is compared with it.
      const identity = await reader.readDomain(domainName);
      // Undefined already: only a tick can tell which row, if any, it was.
      if (identity === null) return 'gone';
      const [row, epoch] = await Promise.all([deps.dbBreaker.run(() => readLiveInstance(deps.db, identity.uuid)), deps.lookClock.epoch()]);
      const observedAt = new Date(deps.now()).toISOString();
      const reading = await reader.readDomain(domainName);
      const look = deps.lookClock.next(epoch);
      // Gone, or redefined under the same name meanwhile: the next event or tick looks again.
      if (reading === null || reading.uuid !== identity.uuid) return 'gone';
      if (row === undefined || row.host !== host) {
        await publishUnknown({ host, instanceUuid: reading.uuid, powerState: reading.state, observedAt, trigger: 'event' });
        discrepanciesFound.inc({ kind: 'unknown' });
        return 'unknown';
      }
      if (!needsObservation(row, reading.state)) return 'in-sync';
      const reason = stateReasonFields(row, reading.state, reading.reason);
      await publishObservations([
        { instanceUuid: reading.uuid, host, powerState: reading.state, expected: expectedRowOf(row), ...reason, observedAt, look, trigger: 'event', tickId: null },
      ]);
      observationsPublished.inc({ trigger: 'event' });
      return 'observation';
    },
  };
}

function recordHostMetrics(report: HostReport): void {
  hostSyncDuration.observe({ outcome: report.outcome }, report.durationMs / 1000);
  if (report.outcome !== 'synced') return;
  instancesCompared.inc(report.compared);
  discrepanciesFound.inc({ kind: 'drifted' }, report.drifted);
  discrepanciesFound.inc({ kind: 'missing' }, report.missing);
  discrepanciesFound.inc({ kind: 'unknown' }, report.unknown);
  observationsPublished.inc({ trigger: 'tick' }, report.published);
  if (report.dbCount !== report.hypervisorCount) countMismatches.inc();
}
