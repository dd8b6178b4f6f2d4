import { z } from 'zod';
import { hostNameSchema, messageIdSchema, schemaVersionSchema, timestampSchema } from './fields.ts';

/** "Sync this host now": one per host per interval from the tick producer, or on demand. */
export const tickSchema = z.object({
  schemaVersion: schemaVersionSchema,
  tickId: messageIdSchema,
  host: hostNameSchema,
  /** The producer's cycle number; 0 for ticks published on demand. */
  cycle: z.number().int().min(0),
  scheduledAt: timestampSchema,
  trigger: z.enum(['periodic', 'manual']),
});

export type Tick = z.infer<typeof tickSchema>;
