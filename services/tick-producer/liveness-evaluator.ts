/**
 * The tick producer's leader judges host liveness once per interval (liveness-rules.ts),
 * in one transaction under an advisory lock, so two producers overlapping during a
 * handover never judge at once. New states and their transitions are stored together;
 * the transitions are then published on `virtsync.reports` as `host.<host>.<state>` and
 * marked published once confirmed. One not confirmed stays stored and is published on
 * the next evaluation: at least once, with `transitionId` as the message id.
 */
import { randomUUID } from 'node:crypto';
import { type Kysely, sql } from 'kysely';
import { type Publisher, publishJson } from '../../shared/bus/publisher.ts';
import { Exchange, livenessRoutingKey } from '../../shared/bus/topology.ts';
import type { Database } from '../../shared/db/database.ts';
import { readDatabaseNow } from '../../shared/db/fleet-status.ts';
import {
  forgetDisabledHosts,
  insertLiveness,
  insertTransitions,
  type LivenessInputRow,
  listUnpublishedTransitions,
  markTransitionsPublished,
  readLivenessInputs,
  recordPipelineHealth,
  REPORT_PATH,
  updateLiveness,
} from '../../shared/db/host-liveness.ts';
import { coerceError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import { encodeMessage } from '../../shared/messages/codec.ts';
import { SCHEMA_VERSION } from '../../shared/messages/fields.ts';
import { type HostLiveness, hostLivenessSchema } from '../../shared/messages/host-liveness.ts';
import { type HostJudgement, type HostLivenessInput, judgeLiveness, type LivenessSettings } from './liveness-rules.ts';

const PUBLISH_BATCH = 500;

function toInput(row: LivenessInputRow): HostLivenessInput {
  return {
    host: row.host,
    current: row.state === null || row.trackedSince === null ? undefined : { state: row.state, trackedSinceMs: row.trackedSince.getTime() },
    receipt: row.lastReceivedAt === null ? undefined : { lastReceivedAtMs: row.lastReceivedAt.getTime(), consecutiveFailures: row.consecutiveFailures },
  };
}

function transitionMessage(judged: HostJudgement, row: LivenessInputRow | undefined, now: Date): HostLiveness {
  return {
    schemaVersion: SCHEMA_VERSION,
    transitionId: randomUUID(),
    host: judged.host,
    state: judged.state,
    previousState: judged.previous,
    changedAt: now.toISOString(),
    reason: judged.reason,
    consecutiveFailures: row?.consecutiveFailures ?? 0,
    lastReportReceivedAt: row?.lastReceivedAt?.toISOString() ?? null,
    lastSuccessfulSyncAt: row?.lastSyncedAt?.toISOString() ?? null,
  };
}

export interface LivenessEvaluator {
  /** Judges every enabled host once, stores what changed, publishes the transitions. */
  evaluate(): Promise<void>;
}

export function createLivenessEvaluator(deps: { db: Kysely<Database>; publisher: Publisher; settings: LivenessSettings; log: Logger }): LivenessEvaluator {
  const { db, publisher, settings } = deps;
  const log = deps.log.child({ component: 'liveness-evaluator' });

  const judgeAndStore = () =>
    db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(hashtext('virtsync.host-liveness'))`.execute(trx);
      const now = await readDatabaseNow(trx);
      const forgotten = await forgetDisabledHosts(trx);
      const rows = await readLivenessInputs(trx);
      const judgement = judgeLiveness(rows.map(toInput), settings, now.getTime());
      const byHost = new Map(rows.map((row) => [row.host, row]));
      // A host judged for the first time is stored healthy; judged otherwise at once, that is a transition too.
      await insertLiveness(trx, judgement.hosts.filter((judged) => judged.isNew).map(({ host }) => ({ host, state: 'healthy', reason: 'judged from now on' })));
      const changed = judgement.hosts.filter((judged) => judged.state !== judged.previous);
      const transitions = changed.map((judged) => {
        const message = transitionMessage(judged, byHost.get(judged.host), now);
        return { transitionId: message.transitionId, host: judged.host, fromState: judged.previous, toState: judged.state, payload: message };
      });
      await updateLiveness(trx, changed);
      await insertTransitions(trx, transitions);
      const detail = `${judgement.goingSilent} of ${judgement.reachable} reachable hosts silent for ${settings.unreachableAfterIntervals} intervals or about to be`;
      const previousPath = await recordPipelineHealth(trx, { component: REPORT_PATH, state: judgement.reportPathSilent ? 'silent' : 'ok', detail });
      return { judgement, transitions, forgotten, previousPath };
    });

  const publishPending = async (): Promise<void> => {
    const pending = await listUnpublishedTransitions(db, PUBLISH_BATCH);
    const confirmed: string[] = [];
    await Promise.all(
      pending.map(async (transition) => {
        const message = hostLivenessSchema.safeParse(transition.payload);
        if (!message.success) {
          log.error({ transitionId: transition.transitionId, reason: message.error.message }, 'stored liveness transition does not parse, not published');
          return;
        }
        try {
          await publishJson(publisher, Exchange.reports, livenessRoutingKey(transition.host, transition.toState), encodeMessage(hostLivenessSchema, message.data), {
            messageId: transition.transitionId,
            type: 'host-liveness',
          });
          confirmed.push(transition.transitionId);
        } catch (err) {
          log.warn({ err: coerceError(err), transitionId: transition.transitionId }, 'liveness transition not published, retried next interval');
        }
      }),
    );
    await markTransitionsPublished(db, confirmed);
  };

  return {
    async evaluate() {
      const { judgement, transitions, forgotten, previousPath } = await judgeAndStore();
      for (const host of forgotten) log.info({ host }, 'host no longer enabled, liveness no longer judged');
      for (const { payload } of transitions) {
        const fields = { host: payload.host, state: payload.state, previousState: payload.previousState, reason: payload.reason };
        if (payload.state === 'healthy') log.info(fields, 'host liveness changed');
        else log.warn(fields, 'host liveness changed');
      }
      const silence = { newlySilent: judgement.newlySilent, goingSilent: judgement.goingSilent, reachable: judgement.reachable };
      if (judgement.reportPathSilent && previousPath !== 'silent') {
        log.error(silence, 'report path silent: most hosts stopped reporting together, none is declared unreachable');
      } else if (!judgement.reportPathSilent && previousPath === 'silent') {
        log.info(silence, 'report path reporting again');
      }
      await publishPending();
    },
  };
}
