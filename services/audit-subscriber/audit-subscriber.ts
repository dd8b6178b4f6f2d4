/**
 * The first downstream consumer, and the worked example for writing one: a queue bound
 * to the changes exchange, every event parsed (never cast), invalid ones dead-lettered,
 * written in batches, deduplicated on the stable event id, acked after the write.
 * It also keeps the newest sync report per host, so operators can see which hosts are
 * overdue or failing.
 */
import type { Kysely } from 'kysely';
import { createDatabaseBreaker } from '../../shared/breaker.ts';
import { startBatchConsumer } from '../../shared/bus/batch-consumer.ts';
import type { BusConnection } from '../../shared/bus/connect.ts';
import { createPublisher } from '../../shared/bus/publisher.ts';
import { coreTopology, Queue } from '../../shared/bus/topology.ts';
import type { AuditSubscriberConfig } from '../../shared/config.ts';
import { appendAuditEntries } from '../../shared/db/audit-log.ts';
import type { AuditEntry, Database } from '../../shared/db/database.ts';
import { recordHostReports } from '../../shared/db/host-sync-reports.ts';
import type { Logger } from '../../shared/logging.ts';
import { type ChangeEvent, changeEventSchema } from '../../shared/messages/change-event.ts';
import { hostReportSchema } from '../../shared/messages/host-report.ts';
import type { RunningService } from '../../shared/service-runner.ts';
import { RULE_REASONS } from '../../shared/sync-rules.ts';

export function toAuditEntry(event: ChangeEvent): AuditEntry {
  return {
    event_id: event.eventId,
    instance_uuid: event.instanceUuid,
    host: event.host,
    rule: event.rule,
    reason: RULE_REASONS[event.rule],
    before_power_state: event.before.powerState,
    after_power_state: event.after.powerState,
    before_vm_state: event.before.vmState,
    after_vm_state: event.after.vmState,
    observation_id: event.observationId,
    observed_at: event.observedAt,
    committed_at: event.committedAt,
  };
}

export async function startAuditSubscriber(deps: {
  config: AuditSubscriberConfig;
  db: Kysely<Database>;
  bus: BusConnection;
  log: Logger;
}): Promise<RunningService> {
  const { config, db, bus } = deps;
  const log = deps.log.child({ component: 'audit-subscriber' });
  const setup = coreTopology(config.busTopology);
  const publisher = createPublisher(bus, { name: 'audit-subscriber.dead-letter', log, setup });
  const batching = { batchSize: config.batchSize, lingerMs: config.batchLingerMs, publisher, setup };
  const dbBreaker = createDatabaseBreaker(config, log);

  const changes = await startBatchConsumer(bus, {
    ...batching,
    name: 'audit-subscriber.changes',
    log,
    queue: Queue.auditSubscriber,
    schema: changeEventSchema,
    write: (events) => dbBreaker.run(() => appendAuditEntries(db, events.map(toAuditEntry))),
    onWritten: (recorded, events) => log.info({ events, recorded, duplicates: events - recorded }, 'audit entries recorded'),
  });
  const reports = await startBatchConsumer(bus, {
    ...batching,
    name: 'audit-subscriber.host-reports',
    log,
    queue: Queue.hostReports,
    schema: hostReportSchema,
    write: (batch) => dbBreaker.run(() => recordHostReports(db, batch)),
    onWritten: (_, count) => log.debug({ reports: count }, 'host reports recorded'),
  });
  log.info('consuming change events and host reports');

  let stopped: Promise<void> | undefined;
  return {
    checks: () => ({ broker: bus.isConnected(), database: dbBreaker.state() !== 'open' }),
    stop() {
      stopped ??= (async () => {
        await Promise.all([changes.stop(), reports.stop()]);
        await publisher.close();
      })();
      return stopped;
    },
  };
}
