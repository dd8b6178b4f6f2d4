import { z } from 'zod';
import {
  hostNameSchema,
  instanceUuidSchema,
  lookOrderSchema,
  messageIdSchema,
  powerStateSchema,
  schemaVersionSchema,
  SCHEMA_VERSION,
  timestampSchema,
  vmStateSchema,
} from './fields.ts';

/**
 * The most instances one observations message carries. A message stays far below the
 * codec's byte limit (about 100 bytes an instance) and a writer transaction stays bounded.
 */
export const MAX_OBSERVATIONS_PER_MESSAGE = 250;

/** The row as the agent read it before asking the hypervisor (a live row of the observing host). */
const expectedRowSchema = z.object({
  powerState: powerStateSchema,
  vmState: vmStateSchema,
  taskState: z.string().max(255).nullable(),
});

/** One instance that disagrees with its row, or that the hypervisor does not know at all (`powerState: null`). */
const observedInstanceSchema = z.object({
  observationId: messageIdSchema,
  instanceUuid: instanceUuidSchema,
  powerState: powerStateSchema.nullable(),
  /** Since look ordering; absent from older agents, whose observations the writer logs and skips. */
  expected: expectedRowSchema.optional(),
  /**
   * libvirt's reason for the state in virsh's words (`migrating`, `starting up`, `migrated`,
   * `user`, ...), when the agent read it: only for a PAUSED or SHUTOFF domain whose row is
   * MIGRATING. Optional: messages without it stay valid and are decided as before.
   */
  reason: z
    .string()
    .regex(/^[\w /.-]{1,40}$/)
    .optional(),
});

/**
 * What an agent saw on one host at one moment: every discrepancy of a host sync, or the
 * one domain of a lifecycle event. One message per host sync, not one per instance: the
 * broker's work is per message, and drift comes in bursts.
 */
export const hostObservationsSchema = z
  .object({
    schemaVersion: schemaVersionSchema,
    /** The observing host: the one whose hypervisor was asked. */
    host: hostNameSchema,
    /** The agent's clock when it looked: shown and audited, never used to order anything. */
    observedAt: timestampSchema,
    /** Orders this look among its host's looks. Since look ordering; absent from older agents. */
    look: lookOrderSchema.optional(),
    trigger: z.enum(['tick', 'event']),
    /** The tick that caused it, if any. */
    tickId: messageIdSchema.nullable(),
    observations: z.array(observedInstanceSchema).min(1).max(MAX_OBSERVATIONS_PER_MESSAGE),
  })
  .superRefine((message, context) => {
    // Two readings of one instance at the same moment cannot both be true.
    const seen = new Set<string>();
    message.observations.forEach(({ instanceUuid }, index) => {
      if (seen.has(instanceUuid)) {
        context.addIssue({ code: 'custom', path: ['observations', index, 'instanceUuid'], message: `instance ${instanceUuid} observed twice` });
      }
      seen.add(instanceUuid);
    });
  });

export type HostObservations = z.infer<typeof hostObservationsSchema>;

/** One instance's observation with its message's context: what the writer decides on. */
export type Observation = z.infer<typeof observedInstanceSchema> & Pick<HostObservations, 'host' | 'observedAt' | 'look' | 'trigger' | 'tickId'>;

export function observationsOf(message: HostObservations): Observation[] {
  const { host, observedAt, look, trigger, tickId } = message;
  return message.observations.map((observed) => ({ ...observed, host, observedAt, look, trigger, tickId }));
}

/** The messages that carry `observations`: one per host, moment and cause, at most MAX_OBSERVATIONS_PER_MESSAGE each. */
export function groupObservations(observations: readonly Observation[]): HostObservations[] {
  const groups = new Map<string, HostObservations>();
  const messages: HostObservations[] = [];
  for (const { observationId, instanceUuid, powerState, expected, reason, host, observedAt, look, trigger, tickId } of observations) {
    const key = JSON.stringify([host, observedAt, look, trigger, tickId]);
    let message = groups.get(key);
    if (message === undefined || message.observations.length >= MAX_OBSERVATIONS_PER_MESSAGE) {
      message = { schemaVersion: SCHEMA_VERSION, host, observedAt, look, trigger, tickId, observations: [] };
      groups.set(key, message);
      messages.push(message);
    }
    message.observations.push({ observationId, instanceUuid, powerState, expected, ...(reason === undefined ? {} : { reason }) });
  }
  return messages;
}
