import { z } from 'zod';
import { hostNameSchema, messageIdSchema, schemaVersionSchema, timestampSchema } from './fields.ts';

export const livenessStateSchema = z.enum(['healthy', 'failing', 'unreachable']);

/**
 * A host's liveness changed, as judged by the tick producer's leader from when its reports
 * were received (the database's clock) and by tick cycle, never from the agent's stamps.
 */
export const hostLivenessSchema = z.object({
  schemaVersion: schemaVersionSchema,
  transitionId: messageIdSchema,
  host: hostNameSchema,
  state: livenessStateSchema,
  previousState: livenessStateSchema,
  /** The database's clock when the leader judged the change. */
  changedAt: timestampSchema,
  /** Why, in words: which threshold was crossed or that reports resumed. */
  reason: z.string(),
  /** Periodic syncs in a row that failed or were skipped, one per tick cycle. */
  consecutiveFailures: z.number().int().min(0),
  /** When the newest report of the host was received; null if none ever was. */
  lastReportReceivedAt: timestampSchema.nullable(),
  /** When the newest synced report was received; null if none ever was. */
  lastSuccessfulSyncAt: timestampSchema.nullable(),
});

export type HostLiveness = z.infer<typeof hostLivenessSchema>;
export type LivenessState = z.infer<typeof livenessStateSchema>;
