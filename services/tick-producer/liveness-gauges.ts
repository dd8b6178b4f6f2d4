/**
 * Every tick producer, leader or standby, exports the liveness gauges from the database:
 * the series are the same whoever leads, so a leader change makes none jump or vanish.
 * Each refresh replaces all series at once (synchronously, so no scrape sees half).
 */
import type { Kysely } from 'kysely';
import type { Database } from '../../shared/db/database.ts';
import { listHostLiveness, listPipelineHealth, REPORT_PATH } from '../../shared/db/host-liveness.ts';
import { hostLastSuccessfulSync, hostsByLiveness, reportPathSilent } from '../../shared/metrics.ts';
import { livenessStateSchema } from '../../shared/messages/host-liveness.ts';

export async function refreshLivenessGauges(db: Kysely<Database>): Promise<void> {
  const hosts = await listHostLiveness(db);
  const pipeline = await listPipelineHealth(db);
  hostLastSuccessfulSync.reset();
  for (const host of hosts) {
    if (host.lastSyncedAt !== null) hostLastSuccessfulSync.set({ host: host.host }, host.lastSyncedAt.getTime() / 1000);
  }
  for (const state of livenessStateSchema.options) {
    hostsByLiveness.set({ liveness: state }, hosts.filter((host) => host.state === state).length);
  }
  reportPathSilent.set(pipeline.some((row) => row.component === REPORT_PATH && row.state === 'silent') ? 1 : 0);
}
