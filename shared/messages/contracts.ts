/** Every message contract by name: what docs/schemas/ is generated from and what the docs list. */
import { changeEventSchema } from './change-event.ts';
import { hostLivenessSchema } from './host-liveness.ts';
import { hostReportSchema } from './host-report.ts';
import { hostObservationsSchema } from './observation.ts';
import { proposedChangeSchema } from './proposed-change.ts';
import { tickSchema } from './tick.ts';
import { unknownDomainSchema } from './unknown-domain.ts';

export const CONTRACTS = {
  tick: tickSchema,
  'host-observations': hostObservationsSchema,
  'change-event': changeEventSchema,
  'proposed-change': proposedChangeSchema,
  'host-report': hostReportSchema,
  'unknown-domain': unknownDomainSchema,
  'host-liveness': hostLivenessSchema,
} as const;
