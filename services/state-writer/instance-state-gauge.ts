/**
 * virtsync_instances{power_state,vm_state}: the live fleet by state, counted from the
 * database at scrape time (one grouped read; the row count is the fleet, not per host). Every
 * writer serves the same counts: aggregate with max(). A failed read keeps the last values
 * rather than failing the scrape.
 */
import type { Kysely } from 'kysely';
import { Gauge, type Registry } from 'prom-client';
import { countLiveInstancesByState } from '../../shared/db/fleet-status.ts';
import type { Database } from '../../shared/db/database.ts';
import { coerceError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import { powerStateKey } from '../../shared/power-state.ts';

export function registerInstanceStateGauge(options: { registry: Registry; db: Kysely<Database>; log: Logger }): void {
  const log = options.log.child({ component: 'instance-state-gauge' });
  new Gauge({
    name: 'virtsync_instances',
    help: 'Live (not soft-deleted) instances rows by power state and vm state',
    labelNames: ['power_state', 'vm_state'] as const,
    registers: [options.registry],
    async collect() {
      let counts: Awaited<ReturnType<typeof countLiveInstancesByState>>;
      try {
        counts = await countLiveInstancesByState(options.db);
      } catch (err) {
        log.warn({ err: coerceError(err) }, 'instance counts not read, keeping the last values');
        return;
      }
      const totals = new Map<string, { power_state: string; vm_state: string; count: number }>();
      for (const { powerState, vmState, count } of counts) {
        const labels = { power_state: powerStateKey(powerState), vm_state: vmState };
        const key = `${labels.power_state}/${labels.vm_state}`;
        const total = totals.get(key) ?? { ...labels, count: 0 };
        total.count += count;
        totals.set(key, total);
      }
      // States that no longer occur drop out instead of keeping a stale count.
      this.reset();
      for (const { count, ...labels } of totals.values()) this.set(labels, count);
    },
  });
}
