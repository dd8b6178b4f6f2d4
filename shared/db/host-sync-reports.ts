import { sql } from 'kysely';
import type { HostReport } from '../messages/host-report.ts';
import { isNewerLook } from '../sync-rules.ts';
import type { Db } from './database.ts';

/**
 * Keeps the newest report per host: by look order when both reports carry one (an older
 * look arriving late never replaces a newer one), otherwise the one received last. The
 * agent's clock (`startedAt`) orders nothing.
 */
export async function recordHostReports(db: Db, reports: readonly HostReport[]): Promise<void> {
  const newest = new Map<string, HostReport>();
  for (const report of reports) {
    const seen = newest.get(report.host);
    if (seen?.look === undefined || report.look === undefined || isNewerLook(report.look, seen.look)) newest.set(report.host, report);
  }
  if (newest.size === 0) return;
  await db
    .insertInto('host_sync_reports')
    .values(
      [...newest.values()].map((report) => ({
        host: report.host,
        tick_id: report.tickId,
        trigger: report.trigger,
        outcome: report.outcome,
        error: report.error,
        started_at: report.startedAt,
        duration_ms: report.durationMs,
        report: JSON.stringify(report),
        look_epoch: report.look?.epoch ?? null,
        look_seq: report.look?.seq ?? null,
      })),
    )
    .onConflict((oc) =>
      oc.column('host').doUpdateSet({
        tick_id: sql`excluded.tick_id`,
        trigger: sql`excluded.trigger`,
        outcome: sql`excluded.outcome`,
        error: sql`excluded.error`,
        started_at: sql`excluded.started_at`,
        duration_ms: sql`excluded.duration_ms`,
        report: sql`excluded.report`,
        received_at: sql`now()`,
        look_epoch: sql`excluded.look_epoch`,
        look_seq: sql`excluded.look_seq`,
      }).where(sql<boolean>`excluded.look_epoch is null or host_sync_reports.look_epoch is null
        or (excluded.look_epoch, excluded.look_seq) > (host_sync_reports.look_epoch, host_sync_reports.look_seq)`),
    )
    .execute();
}
