/**
 * Commits a batch of observations in one transaction: lock the rows (uuid order), decide
 * each observation against the row as it is now, write what the decisions write in one
 * statement per table and the events into the outbox, commit. In write mode that is the rows
 * and change events; in report-only mode the shadow and proposals (WRITER_MODE; see
 * write-ledger.ts and shadow-ledger.ts). Nothing here acks; the caller does, after.
 */
import type { Kysely } from 'kysely';
import type { WriterMode } from '../../shared/config.ts';
import { insertOutboxEvents } from '../../shared/db/change-outbox.ts';
import type { Database } from '../../shared/db/database.ts';
import { lockInstances } from '../../shared/db/instances.ts';
import { readShadowEntries } from '../../shared/db/sync-shadow.ts';
import type { Observation } from '../../shared/messages/observation.ts';
import type { Decision, ObservedState, SyncPolicy, SyncRule } from '../../shared/sync-rules.ts';
import type { LedgerOutput } from './ledger.ts';
import { createShadowLedger } from './shadow-ledger.ts';
import { createWriteLedger } from './write-ledger.ts';

export interface BatchResult extends LedgerOutput {
  /** How many observations each rule decided. */
  outcomes: Partial<Record<SyncRule, number>>;
  /** Observations whose skip an operator should hear about (moved, migrating in, ...). */
  notable: Array<{ observation: Observation; rule: SyncRule }>;
  /** Observations skipped as stale: the cloud or a newer look got there first. */
  stale: Array<{ observation: Observation; rule: SyncRule }>;
}

const NOTABLE_SKIPS: ReadonlySet<SyncRule> = new Set(['moved', 'migrating-in', 'in-transition', 'deleted', 'stale-host', 'task-in-progress', 'legacy-contract']);

/** An observation as the rules take it, or undefined for an agent that predates look ordering. */
export function observedStateOf(observation: Observation): ObservedState | undefined {
  const { look, expected } = observation;
  if (look === undefined || expected === undefined) return undefined;
  // Agents observe only live rows of their own host.
  return {
    host: observation.host,
    powerState: observation.powerState,
    look,
    expected: { ...expected, host: observation.host, deleted: false },
    ...(observation.reason === undefined ? {} : { reason: observation.reason }),
  };
}

export async function applyObservations(
  db: Kysely<Database>,
  observations: readonly Observation[],
  policy: SyncPolicy,
  mode: WriterMode = 'write',
): Promise<BatchResult> {
  // In look order, so a batch holding two looks of one VM by one host applies them in turn (the sort is stable; looks of other hosts are not compared).
  const ordered = [...observations].sort(byLook);
  return db.transaction().execute(async (trx) => {
    const uuids = [...new Set(ordered.map((o) => o.instanceUuid))];
    const rows = await lockInstances(trx, uuids);
    const now = new Date().toISOString();
    // The shadow is read under the row locks too: two report-only writers never interleave on an entry.
    const ledger = mode === 'write' ? createWriteLedger(rows, policy, now) : createShadowLedger(rows, await readShadowEntries(trx, uuids), policy, now);
    const result: Omit<BatchResult, keyof LedgerOutput> = { outcomes: {}, notable: [], stale: [] };

    for (const observation of ordered) {
      const observed = observedStateOf(observation);
      const decision: Decision = observed === undefined ? { action: 'skip', rule: 'legacy-contract' } : ledger.decide(observation, observed);
      result.outcomes[decision.rule] = (result.outcomes[decision.rule] ?? 0) + 1;
      if (NOTABLE_SKIPS.has(decision.rule)) result.notable.push({ observation, rule: decision.rule });
      if (STALE_SKIPS.has(decision.rule)) result.stale.push({ observation, rule: decision.rule });
    }

    const output = await ledger.write(trx);
    await insertOutboxEvents(trx, output.outbox);
    return { ...result, ...output };
  });
}

const STALE_SKIPS: ReadonlySet<SyncRule> = new Set(['changed-after-read', 'stale-observation']);

const NO_LOOK = { epoch: 0, seq: 0 };

/** Orders one host's looks; the epoch dominates (an agent restart never reuses a sequence). */
function byLook(a: Observation, b: Observation): number {
  const [x, y] = [a.look ?? NO_LOOK, b.look ?? NO_LOOK];
  return x.epoch - y.epoch || x.seq - y.seq;
}
