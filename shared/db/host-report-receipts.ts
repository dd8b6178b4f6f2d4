/**
 * What the audit subscriber received from each host, for host liveness: when (the
 * database's clock, never the agent's stamps), the outcome, and how many periodic syncs in
 * a row failed or were skipped, counted once per tick cycle so a redelivered report or a
 * second report of one cycle does not count twice. A synced report resets the count unless
 * it belongs to an older cycle than a failure already counted.
 */
import { type Kysely, sql } from 'kysely';
import type { HostReport } from '../messages/host-report.ts';
import type { Database } from './database.ts';

/** One statement per round: a host appears at most once in a round, in arrival order. */
function rounds(reports: readonly HostReport[]): HostReport[][] {
  const byRound: HostReport[][] = [];
  const seen = new Map<string, number>();
  for (const report of reports) {
    const round = seen.get(report.host) ?? 0;
    seen.set(report.host, round + 1);
    (byRound[round] ??= []).push(report);
  }
  return byRound;
}

export async function recordReportReceipts(db: Kysely<Database>, reports: readonly HostReport[]): Promise<void> {
  for (const round of rounds(reports)) {
    await db
      .insertInto('host_report_receipts')
      .values(
        round.map((report) => {
          const periodic = report.trigger === 'periodic';
          const failed = report.outcome !== 'synced';
          return {
            host: report.host,
            last_received_at: sql<Date>`now()`,
            last_outcome: report.outcome,
            last_synced_at: failed ? null : sql<Date>`now()`,
            consecutive_failures: failed && periodic ? 1 : 0,
            last_counted_cycle: periodic ? report.cycle : null,
          };
        }),
      )
      .onConflict((oc) =>
        oc.column('host').doUpdateSet({
          last_received_at: sql`excluded.last_received_at`,
          last_outcome: sql`excluded.last_outcome`,
          last_synced_at: sql`coalesce(excluded.last_synced_at, host_report_receipts.last_synced_at)`,
          consecutive_failures: sql`case
            when excluded.last_outcome = 'synced'
              then case when excluded.last_counted_cycle < host_report_receipts.last_counted_cycle
                then host_report_receipts.consecutive_failures else 0 end
            when excluded.last_counted_cycle is null then host_report_receipts.consecutive_failures
            when host_report_receipts.last_counted_cycle >= excluded.last_counted_cycle then host_report_receipts.consecutive_failures
            else host_report_receipts.consecutive_failures + 1 end`,
          last_counted_cycle: sql`greatest(host_report_receipts.last_counted_cycle, excluded.last_counted_cycle)`,
        }),
      )
      .execute();
  }
}
