import { z } from 'zod';
import {
  hostNameSchema,
  instanceUuidSchema,
  messageIdSchema,
  powerStateSchema,
  schemaVersionSchema,
  timestampSchema,
} from './fields.ts';

/**
 * What an agent saw of one instance that disagrees with its row, or that the hypervisor
 * does not know at all (`powerState: null`).
 */
export const observationSchema = z.object({
  schemaVersion: schemaVersionSchema,
  observationId: messageIdSchema,
  instanceUuid: instanceUuidSchema,
  /** The observing host: the one whose hypervisor was asked. */
  host: hostNameSchema,
  powerState: powerStateSchema.nullable(),
  observedAt: timestampSchema,
  trigger: z.enum(['tick', 'event']),
  /** The tick that caused it, if any. */
  tickId: messageIdSchema.nullable(),
});

export type Observation = z.infer<typeof observationSchema>;
