/**
 * Publishes committed changes from the outbox: claim a page of unpublished events,
 * publish them with confirms, mark them published, commit. A crash between publish and
 * commit republishes the page with the same event ids, which consumers dedupe.
 * Woken after each commit; also polls, so events left by a crashed writer go out.
 */
import type { Kysely } from 'kysely';
import { publishJson, type Publisher } from '../../shared/bus/publisher.ts';
import { Exchange } from '../../shared/bus/topology.ts';
import { claimUnpublished, countUnpublished, markPublished } from '../../shared/db/change-outbox.ts';
import type { Database } from '../../shared/db/database.ts';
import { coerceError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import { outboxBacklog } from '../../shared/metrics.ts';

const PAGE_SIZE = 500;

export interface OutboxRelay {
  /** Something was committed: publish soon. */
  wake(): void;
  /** Publishes everything pending, then stops polling. */
  stop(): Promise<void>;
}

export function startOutboxRelay(deps: { db: Kysely<Database>; publisher: Publisher; pollMs: number; log: Logger }): OutboxRelay {
  const log = deps.log.child({ component: 'outbox-relay' });
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = false;

  /** Publishes one page; returns how many events it published. */
  const publishPage = (): Promise<number> =>
    deps.db.transaction().execute(async (trx) => {
      const events = await claimUnpublished(trx, PAGE_SIZE);
      await Promise.all(
        events.map((event) =>
          publishJson(deps.publisher, Exchange.changes, event.routingKey, Buffer.from(JSON.stringify(event.payload)), {
            messageId: event.eventId,
            type: 'instance-change',
          }),
        ),
      );
      await markPublished(trx, events.map((event) => event.seq));
      return events.length;
    });

  const drain = async (): Promise<void> => {
    do {
      again = false;
      try {
        let published: number;
        do {
          published = await publishPage();
          if (published > 0) log.debug({ published }, 'change events published');
        } while (published === PAGE_SIZE);
      } catch (err) {
        log.warn({ err: coerceError(err) }, 'outbox relay failed, retrying on the next poll');
        outboxBacklog.set(await countUnpublished(deps.db).catch(() => Number.NaN));
        return;
      }
    } while (again);
    outboxBacklog.set(0);
  };

  const wake = (): void => {
    if (running !== undefined) {
      again = true;
      return;
    }
    running = drain().finally(() => {
      running = undefined;
    });
  };

  const timer = setInterval(wake, deps.pollMs);
  wake();

  return {
    wake() {
      if (!stopped) wake();
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
      await drain();
    },
  };
}
