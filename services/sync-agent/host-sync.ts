/**
 * One sync of one host: read its rows, read its hypervisor, compare, publish one
 * observation per discrepancy and a report, all confirmed by the broker before returning.
 */
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { publishJson, type Publisher } from '../../shared/bus/publisher.ts';
import { Exchange, observationRoutingKey, reportRoutingKey } from '../../shared/bus/topology.ts';
import type { Database } from '../../shared/db/database.ts';
import { readHostInstances } from '../../shared/db/instances.ts';
import { coerceError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import { encodeMessage } from '../../shared/messages/codec.ts';
import { SCHEMA_VERSION } from '../../shared/messages/fields.ts';
import { type HostReport, hostReportSchema } from '../../shared/messages/host-report.ts';
import { type Observation, observationSchema } from '../../shared/messages/observation.ts';
import { compareHost, type HostComparison } from './host-comparison.ts';
import type { HypervisorReader } from './hypervisor-reader.ts';

export interface HostSyncRequest {
  host: string;
  tickId: string | null;
  trigger: Observation['trigger'];
}

export type SyncHost = (request: HostSyncRequest) => Promise<HostReport>;

export function createHostSync(deps: {
  db: Kysely<Database>;
  publisher: Publisher;
  readerFor: (host: string) => HypervisorReader;
  log: Logger;
}): SyncHost {
  return async ({ host, tickId, trigger }) => {
    const log = deps.log.child({ host, tickId });
    const started = Date.now();
    let comparison: HostComparison | undefined;
    let error: string | null = null;
    try {
      const rows = await readHostInstances(deps.db, host);
      // Stamped before libvirt is asked: if the cloud changes a row while we read, our view counts as older.
      const observedAt = new Date().toISOString();
      comparison = compareHost(rows, await deps.readerFor(host).read());
      if (comparison.dbCount !== comparison.hypervisorCount) {
        log.warn(
          { dbCount: comparison.dbCount, hypervisorCount: comparison.hypervisorCount },
          'instance count differs between database and hypervisor',
        );
      }
      if (comparison.unknownUuids.length > 0) {
        log.warn({ unknown: comparison.unknownUuids.length, sample: comparison.unknownUuids.slice(0, 5) }, 'hypervisor runs domains no row places here');
      }
      await Promise.all(
        comparison.discrepancies.map((discrepancy) => {
          const observation: Observation = {
            schemaVersion: SCHEMA_VERSION,
            observationId: randomUUID(),
            instanceUuid: discrepancy.uuid,
            host,
            powerState: discrepancy.powerState,
            observedAt,
            trigger,
            tickId,
          };
          return publishJson(
            deps.publisher,
            Exchange.observations,
            observationRoutingKey(host, discrepancy.powerState),
            encodeMessage(observationSchema, observation),
            { messageId: observation.observationId, type: 'observation' },
          );
        }),
      );
    } catch (err) {
      error = coerceError(err).message;
      log.error({ err: coerceError(err) }, 'host sync failed, the next tick retries');
    }

    const report: HostReport = {
      schemaVersion: SCHEMA_VERSION,
      host,
      tickId,
      startedAt: new Date(started).toISOString(),
      durationMs: Date.now() - started,
      outcome: error === null ? 'synced' : 'failed',
      error,
      dbCount: comparison?.dbCount ?? 0,
      hypervisorCount: comparison?.hypervisorCount ?? 0,
      compared: comparison?.compared ?? 0,
      drifted: comparison?.drifted ?? 0,
      missing: comparison?.missing ?? 0,
      unknown: comparison?.unknownUuids.length ?? 0,
      published: error === null ? (comparison?.discrepancies.length ?? 0) : 0,
    };
    await publishJson(deps.publisher, Exchange.reports, reportRoutingKey(host), encodeMessage(hostReportSchema, report), {
      messageId: randomUUID(),
      type: 'host-report',
    });
    if (error === null) {
      const { outcome, dbCount, compared, drifted, missing, unknown, durationMs } = report;
      log.info({ outcome, dbCount, compared, drifted, missing, unknown, durationMs }, 'host synced');
    }
    return report;
  };
}
