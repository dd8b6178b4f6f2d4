import { z } from 'zod';
import { changeEventSchema } from './change-event.ts';
import { timestampSchema } from './fields.ts';

/**
 * A change a report-only writer (WRITER_MODE=report-only) decided on and did not write:
 * the change event's shape, `before` being the instances row as it is and `after` what the
 * writer would have left, stamped when it was decided. `eventId` is stable across
 * redeliveries. Never a change of `instances`: published under `proposed.<host>.<state>`.
 */
export const proposedChangeSchema = changeEventSchema.omit({ committedAt: true }).extend({ decidedAt: timestampSchema });

export type ProposedChange = z.infer<typeof proposedChangeSchema>;
