import { type Kysely, sql } from 'kysely';
import type { HostReport } from '../messages/host-report.ts';
import type { Database } from './database.ts';

/** Keeps the newest report per host; an older one arriving late never replaces a newer one. */
export async function recordHostReports(db: Kysely<Database>, reports: readonly HostReport[]): Promise<void> {
  const newest = new Map<string, HostReport>();
  for (const report of reports) {
    const seen = newest.get(report.host);
    if (seen === undefined || Date.parse(report.startedAt) > Date.parse(seen.startedAt)) newest.set(report.host, report);
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
      }).where('host_sync_reports.started_at', '<', sql<Date>`excluded.started_at`),
    )
    .execute();
}
