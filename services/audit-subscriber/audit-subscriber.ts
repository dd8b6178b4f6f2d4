/**
 * The first downstream consumer, and the worked example for writing one: a queue bound
 * to the changes exchange, every event parsed (never cast), invalid ones dead-lettered,
 * written in batches, deduplicated on the stable event id, acked after the write.
 * It also keeps the newest sync report per host, so operators can see which hosts are
 * overdue or failing, and when each host was last heard of (host liveness).
 */
import { startBatchConsumer } from '../../shared/bus/batch-consumer.ts';
import { coreTopology, Queue } from '../../shared/bus/topology.ts';
import { auditSubscriberEnv } from '../../shared/config.ts';
import { appendAuditEntries } from '../../shared/db/audit-log.ts';
import { recordReportReceipts } from '../../shared/db/host-report-receipts.ts';
import { recordHostReports } from '../../shared/db/host-sync-reports.ts';
import { changeEventSchema } from '../../shared/messages/change-event.ts';
import { hostReportSchema } from '../../shared/messages/host-report.ts';
import { defineService } from '../../shared/service-runner.ts';

export const auditSubscriber = defineService({
  name: 'audit-subscriber',
  env: auditSubscriberEnv,
  async start({ config, log, db, bus, publisher, dbBreaker, defer }) {
    const batching = { batchSize: config.batchSize, lingerMs: config.batchLingerMs, publisher, setup: coreTopology(config.busTopology) };
    const changes = await startBatchConsumer(bus, {
      ...batching,
      name: 'audit-subscriber.changes',
      log,
      queue: Queue.auditSubscriber,
      schema: changeEventSchema,
      write: (events) => dbBreaker.run(() => appendAuditEntries(db, events)),
      onWritten: (recorded, events) => log.info({ events, recorded, duplicates: events - recorded }, 'audit entries recorded'),
    });
    defer(() => changes.stop());
    const reports = await startBatchConsumer(bus, {
      ...batching,
      name: 'audit-subscriber.host-reports',
      log,
      queue: Queue.hostReports,
      schema: hostReportSchema,
      write: (batch) =>
        dbBreaker.run(async () => {
          await recordHostReports(db, batch);
          await recordReportReceipts(db, batch); // when each host was last heard of, for host liveness
        }),
      onWritten: (_, count) => log.debug({ reports: count }, 'host reports recorded'),
    });
    defer(() => reports.stop());
    log.info('consuming change events and host reports');
    return { checks: () => ({ writes: changes.health(), reportWrites: reports.health() }) };
  },
});
