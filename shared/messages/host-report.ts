import { z } from 'zod';
import { hostNameSchema, lookOrderSchema, messageIdSchema, schemaVersionSchema, timestampSchema } from './fields.ts';

const count = z.number().int().min(0);

/** One per host sync: what the agent compared and found, or why it could not. */
export const hostReportSchema = z.object({
  schemaVersion: schemaVersionSchema,
  host: hostNameSchema,
  tickId: messageIdSchema.nullable(),
  /** The tick producer's cycle number; 0 for a sync asked for on demand. */
  cycle: z.number().int().min(0),
  trigger: z.enum(['periodic', 'manual']),
  startedAt: timestampSchema,
  durationMs: z.number().min(0),
  /** skipped: a circuit breaker refused the call (the dependency failed repeatedly). */
  outcome: z.enum(['synced', 'failed', 'skipped']),
  /** Why the sync failed or was skipped; null when it did not. */
  error: z.string().nullable(),
  dbCount: count,
  hypervisorCount: count,
  /** Rows compared with a domain the hypervisor has. */
  compared: count,
  /** Found on the hypervisor in another state than the row's. */
  drifted: count,
  /** Rows the hypervisor does not know. */
  missing: count,
  /** Domains the hypervisor runs that no row places on this host. */
  unknown: count,
  /** Observations published (drifted + missing). */
  published: count,
  /** The look this report is of: reports of a host are ordered by it. Absent from older agents and from syncs that failed before the hypervisor answered. */
  look: lookOrderSchema.optional(),
});

export type HostReport = z.infer<typeof hostReportSchema>;
