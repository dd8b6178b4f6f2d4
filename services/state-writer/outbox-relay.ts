/**
 * Publishes committed changes (and a report-only writer's proposals, the same way). The writer hands over each batch's changes right after
 * its commit: they are published with confirms and marked published. The outbox row,
 * written in the same transaction as the change, is the safety net: the relay polls for
 * rows still unpublished after a grace period (their writer crashed, or the broker was
 * away), claims them in one short statement (locked_at/locked_by), publishes them with no
 * transaction open while it waits for the confirms, and marks them. A claim it could not
 * publish is released; a relay that dies leaves claims that expire. A crash between publish
 * and mark republishes with the same event ids, which consumers dedupe. Each poll also deletes rows published longer ago than
 * the retention, a bounded number at a time.
 */
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { publishJson, type Publisher } from '../../shared/bus/publisher.ts';
import { Exchange } from '../../shared/bus/topology.ts';
import { createInFlight } from '../../shared/concurrency.ts';
import { claimUnpublished, countUnpublished, deletePublishedBefore, markPublished, type OutboxEvent, releaseClaims } from '../../shared/db/change-outbox.ts';
import type { Database } from '../../shared/db/database.ts';
import { coerceError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import { outboxBacklog } from '../../shared/metrics.ts';

const PAGE_SIZE = 500;
/** Rows younger than this are being published by the writer that committed them. */
const HANDOVER_GRACE_MS = 5_000;
/** A claim this old belongs to a relay that died or hung: longer than a publish may wait for its confirms (60 s). */
const CLAIM_TTL_MS = 120_000;
/** Rows deleted per statement, and statements per poll: pruning a backlog never holds up a poll for long. */
const PRUNE_PAGE_SIZE = 5_000;
const PRUNE_PAGES_PER_POLL = 10;

export interface OutboxRelay {
  /** A batch was committed: publish its changes now. */
  publishCommitted(events: readonly OutboxEvent[]): void;
  /** Waits for handed-over batches, publishes what the poll finds, then stops polling. */
  stop(): Promise<void>;
}

export function startOutboxRelay(deps: {
  db: Kysely<Database>;
  publisher: Publisher;
  pollMs: number;
  /** Published rows older than this are deleted. */
  retentionMs: number;
  log: Logger;
}): OutboxRelay {
  const log = deps.log.child({ component: 'outbox-relay' });
  const handedOver = createInFlight();
  const claimant = `outbox-relay ${randomUUID()}`;
  let polling: Promise<void> | undefined;

  const publish = (events: readonly OutboxEvent[]): Promise<unknown> =>
    Promise.all(
      events.map((event) =>
        publishJson(deps.publisher, Exchange.changes, event.routingKey, Buffer.from(JSON.stringify(event.payload)), {
          messageId: event.eventId,
          type: event.messageType,
        }),
      ),
    );

  /** Publishes one page of stale rows; returns how many. */
  const publishStalePage = async (): Promise<number> => {
    const events = await claimUnpublished(deps.db, { limit: PAGE_SIZE, olderThanMs: HANDOVER_GRACE_MS, claimant, claimTtlMs: CLAIM_TTL_MS });
    const eventIds = events.map((event) => event.eventId);
    try {
      await publish(events);
    } catch (err) {
      await releaseClaims(deps.db, eventIds, claimant).catch(() => undefined);
      throw err;
    }
    await markPublished(deps.db, eventIds);
    return events.length;
  };

  const poll = async (): Promise<void> => {
    try {
      let published: number;
      do {
        published = await publishStalePage();
        if (published > 0) log.warn({ published }, 'published changes their writer had not (crash or broker outage)');
      } while (published === PAGE_SIZE);
      outboxBacklog.set(await countUnpublished(deps.db));
      await prune();
    } catch (err) {
      log.warn({ err: coerceError(err) }, 'outbox poll failed, retrying on the next one');
    }
  };

  const prune = async (): Promise<void> => {
    let deleted = 0;
    for (let page = 0; page < PRUNE_PAGES_PER_POLL; page++) {
      const count = await deletePublishedBefore(deps.db, deps.retentionMs, PRUNE_PAGE_SIZE);
      deleted += count;
      if (count < PRUNE_PAGE_SIZE) break;
    }
    if (deleted > 0) log.debug({ deleted, retentionMs: deps.retentionMs }, 'published changes past their retention deleted from the outbox');
  };

  const timer = setInterval(() => {
    polling ??= poll().finally(() => {
      polling = undefined;
    });
  }, deps.pollMs);

  return {
    publishCommitted(events) {
      if (events.length === 0) return;
      handedOver.track(
        publish(events)
          .then(() => markPublished(deps.db, events.map((event) => event.eventId)))
          .then(
            () => log.debug({ published: events.length }, 'change events published'),
            (err: unknown) => log.warn({ err: coerceError(err), events: events.length }, 'change events not published yet, the outbox poll will'),
          ),
      );
    },
    async stop() {
      clearInterval(timer);
      await handedOver.settled();
      await polling;
      await poll();
    },
  };
}
