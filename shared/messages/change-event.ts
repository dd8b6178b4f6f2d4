import { z } from 'zod';
import { UPDATE_RULES } from '../sync-rules.ts';
import {
  hostNameSchema,
  instanceUuidSchema,
  messageIdSchema,
  powerStateSchema,
  schemaVersionSchema,
  timestampSchema,
  vmStateSchema,
} from './fields.ts';

const instanceStateSchema = z.object({
  powerState: powerStateSchema,
  vmState: vmStateSchema,
});

/** A change the state writer committed to `instances`; `eventId` is stable across redeliveries. */
export const changeEventSchema = z.object({
  schemaVersion: schemaVersionSchema,
  eventId: messageIdSchema,
  instanceUuid: instanceUuidSchema,
  host: hostNameSchema,
  rule: z.enum(UPDATE_RULES),
  before: instanceStateSchema,
  after: instanceStateSchema,
  observationId: messageIdSchema,
  observedAt: timestampSchema,
  committedAt: timestampSchema,
});

export type ChangeEvent = z.infer<typeof changeEventSchema>;
