/** Every message contract by name: what docs/schemas/ is generated from and what the docs list. */
import { changeEventSchema } from './change-event.ts';
import { hostReportSchema } from './host-report.ts';
import { observationSchema } from './observation.ts';
import { tickSchema } from './tick.ts';
import { unknownDomainSchema } from './unknown-domain.ts';

export const CONTRACTS = {
  tick: tickSchema,
  observation: observationSchema,
  'change-event': changeEventSchema,
  'host-report': hostReportSchema,
  'unknown-domain': unknownDomainSchema,
} as const;
