import { sql, type Transaction } from 'kysely';
import { countRows } from './count-rows.ts';
import type { Database, Db } from './database.ts';

export interface OutboxEvent {
  eventId: string;
  routingKey: string;
  /** The AMQP `type` it is published with: `instance-change`, or `proposed-change` from a report-only writer. */
  messageType: string;
  payload: unknown;
}

export interface PendingEvent extends OutboxEvent {
  seq: string;
}

export async function insertOutboxEvents(trx: Transaction<Database>, events: readonly OutboxEvent[]): Promise<void> {
  if (events.length === 0) return;
  await trx
    .insertInto('change_outbox')
    .values(events.map((event) => ({
      event_id: event.eventId,
      routing_key: event.routingKey,
      message_type: event.messageType,
      payload: JSON.stringify(event.payload),
    })))
    .execute();
}

/**
 * Claims the oldest unpublished events committed at least `olderThanMs` ago (younger ones
 * are still being published by the writer that committed them) for `claimant`, in one
 * statement: no transaction stays open while the claimant publishes. Rows claimed by another
 * relay are skipped until their claim is older than `claimTtlMs` (that relay died or hung);
 * SKIP LOCKED keeps two relays claiming at the same instant from waiting on each other.
 */
export async function claimUnpublished(
  db: Db,
  options: { limit: number; olderThanMs: number; claimant: string; claimTtlMs: number },
): Promise<PendingEvent[]> {
  const rows = await db
    .updateTable('change_outbox')
    .set({ locked_at: sql`now()`, locked_by: options.claimant })
    .where('seq', 'in', (eb) =>
      eb
        .selectFrom('change_outbox')
        .select('seq')
        .where('published_at', 'is', null)
        .where('created_at', '<', sql<Date>`now() - make_interval(secs => ${options.olderThanMs / 1000})`)
        .where((inner) =>
          inner.or([
            inner('locked_at', 'is', null),
            inner('locked_at', '<', sql<Date>`now() - make_interval(secs => ${options.claimTtlMs / 1000})`),
          ]),
        )
        .orderBy('seq')
        .limit(options.limit)
        .forUpdate()
        .skipLocked(),
    )
    .returning(['seq', 'event_id', 'routing_key', 'message_type', 'payload'])
    .execute();
  // RETURNING follows no order: publish oldest first.
  return rows
    .map((row) => ({ seq: row.seq, eventId: row.event_id, routingKey: row.routing_key, messageType: row.message_type, payload: row.payload }))
    .sort((a, b) => (BigInt(a.seq) < BigInt(b.seq) ? -1 : 1));
}

/** Gives up `claimant`'s claims on rows it could not publish, so the next poll takes them at once. */
export async function releaseClaims(db: Db, eventIds: readonly string[], claimant: string): Promise<void> {
  if (eventIds.length === 0) return;
  await db
    .updateTable('change_outbox')
    .set({ locked_at: null, locked_by: null })
    .where('event_id', '=', sql<string>`any(${sql.val([...eventIds])}::uuid[])`)
    .where('locked_by', '=', claimant)
    .where('published_at', 'is', null)
    .execute();
}

export async function markPublished(db: Db, eventIds: readonly string[]): Promise<void> {
  if (eventIds.length === 0) return;
  await db
    .updateTable('change_outbox')
    .set({ published_at: sql`now()` })
    .where('event_id', '=', sql<string>`any(${sql.val([...eventIds])}::uuid[])`)
    .execute();
}

/**
 * Deletes up to `limit` of the oldest events published more than `olderThanMs` ago; returns
 * how many. Unpublished events are never deleted. Rows are published roughly in `seq` order,
 * so the primary key walks straight to the old ones.
 */
export async function deletePublishedBefore(db: Db, olderThanMs: number, limit: number): Promise<number> {
  const result = await sql`
    delete from change_outbox
     where seq in (
       select seq from change_outbox
        where published_at < now() - make_interval(secs => ${olderThanMs / 1000})
        order by seq
        limit ${limit})`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}

export async function countUnpublished(db: Db): Promise<number> {
  return countRows(db.selectFrom('change_outbox').where('published_at', 'is', null));
}
