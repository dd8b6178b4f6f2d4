/**
 * The operator's policy for unreachable hosts (UNREACHABLE_HOST_POLICY=nostate): once the tick
 * producer's leader has judged a host unreachable for UNREACHABLE_NOSTATE_AFTER_MS (by the
 * database's clock), its instances become NOSTATE with rule host-unreachable, through the
 * writer like any change: row locks in uuid order, the rows and virtsync's record of its own
 * write in one transaction with the change events' outbox rows, then published and audited.
 * Never while the report path is silent (that is virtsync's failure, not the hosts').
 * Idempotent: a second writer doing the same finds the rows NOSTATE already.
 */
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Breaker } from '../../shared/breaker.ts';
import { insertOutboxEvents, type OutboxEvent } from '../../shared/db/change-outbox.ts';
import type { Database } from '../../shared/db/database.ts';
import { listHostsUnreachableFor } from '../../shared/db/host-liveness.ts';
import { lockInstances, readHostInstances, type SyncStateWrite, writeSyncStates } from '../../shared/db/instances.ts';
import { coerceError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import type { ChangeEvent } from '../../shared/messages/change-event.ts';
import { changesCommitted, writerDecisions } from '../../shared/metrics.ts';
import { PowerState, powerStateKey } from '../../shared/power-state.ts';
import { runEvery } from '../../shared/run-every.ts';
import { decideUnreachableHost, type SyncRule } from '../../shared/sync-rules.ts';
import { eventBody, outboxEventOf } from './ledger.ts';

/** Sets the host's instances NOSTATE where the rules allow, in one transaction; returns the change events. */
export async function applyUnreachableHost(
  db: Kysely<Database>,
  host: string,
): Promise<{ changes: ChangeEvent[]; outbox: OutboxEvent[]; outcomes: Partial<Record<SyncRule, number>> }> {
  const candidates = (await readHostInstances(db, host)).filter((instance) => instance.powerState !== PowerState.NOSTATE).map((instance) => instance.uuid);
  if (candidates.length === 0) return { changes: [], outbox: [], outcomes: {} };
  return db.transaction().execute(async (trx) => {
    const rows = await lockInstances(trx, candidates);
    const decidedAt = new Date().toISOString();
    const writes: SyncStateWrite[] = [];
    const changes: ChangeEvent[] = [];
    const outcomes: Partial<Record<SyncRule, number>> = {};
    for (const uuid of candidates) {
      const row = rows.get(uuid);
      const decision = decideUnreachableHost(row, host);
      outcomes[decision.rule] = (outcomes[decision.rule] ?? 0) + 1;
      if (row === undefined || decision.action !== 'update') continue;
      const after = { powerState: decision.powerState, vmState: decision.vmState };
      // virtsync's own write, recorded as such: a look the host made before it went silent is not mistaken for the cloud's.
      writes.push({ uuid, state: { ...row, ...after, written: after }, changesRow: true, observedAt: decidedAt });
      // No observation: the writer's finding has an id of its own in the observation's place.
      const source = { instanceUuid: uuid, observationId: randomUUID(), observedAt: decidedAt };
      changes.push({ ...eventBody(source, host, decision.rule, { powerState: row.powerState, vmState: row.vmState }, after), committedAt: decidedAt });
    }
    await writeSyncStates(trx, writes);
    const outbox = changes.map((change) => outboxEventOf(change, 'instance'));
    await insertOutboxEvents(trx, outbox);
    return { changes, outbox, outcomes };
  });
}

export interface UnreachableHostPolicy {
  stop(): Promise<void>;
}

export function startUnreachableHostPolicy(deps: {
  db: Kysely<Database>;
  dbBreaker: Breaker;
  afterMs: number;
  checkMs: number;
  /** Hands committed change events to the outbox relay. */
  publishCommitted: (outbox: readonly OutboxEvent[]) => void;
  log: Logger;
}): UnreachableHostPolicy {
  const log = deps.log.child({ component: 'unreachable-hosts' });
  const abort = new AbortController();
  const check = async (): Promise<void> => {
    const hosts = await deps.dbBreaker.run(() => listHostsUnreachableFor(deps.db, deps.afterMs));
    for (const host of hosts) {
      const { changes, outbox, outcomes } = await deps.dbBreaker.run(() => applyUnreachableHost(deps.db, host));
      // Counted once committed, as the batches' decisions are.
      for (const [rule, count] of Object.entries(outcomes)) writerDecisions.inc({ rule }, count);
      if (changes.length === 0) continue;
      deps.publishCommitted(outbox);
      for (const change of changes) changesCommitted.inc({ power_state: powerStateKey(change.after.powerState) });
      log.warn({ host, instances: changes.length, afterMs: deps.afterMs }, 'host unreachable past the policy delay: its instances set to NOSTATE (UNREACHABLE_HOST_POLICY=nostate)');
    }
  };
  log.info({ afterMs: deps.afterMs, checkMs: deps.checkMs }, 'instances of hosts unreachable past the delay will be set to NOSTATE');
  const running = runEvery({
    everyMs: deps.checkMs,
    signal: abort.signal,
    work: check,
    onError: (err) => log.warn({ err: coerceError(err) }, 'unreachable-host policy check failed; retrying at the next check'),
  });
  return {
    async stop() {
      abort.abort();
      await running;
    },
  };
}
