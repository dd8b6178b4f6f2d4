import { z } from 'zod';
import { hostNameSchema, instanceUuidSchema, powerStateSchema, schemaVersionSchema, timestampSchema } from './fields.ts';

/**
 * A domain the hypervisor runs that no `instances` row places on that host: leaked,
 * created behind the cloud's back, or a migration that just landed. Reported, never written.
 */
export const unknownDomainSchema = z.object({
  schemaVersion: schemaVersionSchema,
  host: hostNameSchema,
  instanceUuid: instanceUuidSchema,
  /** null when the domain's state could not be read. */
  powerState: powerStateSchema.nullable(),
  observedAt: timestampSchema,
  trigger: z.enum(['tick', 'event']),
});

export type UnknownDomain = z.infer<typeof unknownDomainSchema>;
