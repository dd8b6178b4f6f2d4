/** Field schemas shared by the message contracts. */
import { z } from 'zod';
import { POWER_STATES } from '../power-state.ts';
import { VmState } from '../vm-state.ts';

export { hostNameSchema } from '../host-name.ts';

export const SCHEMA_VERSION = 1;

export const schemaVersionSchema = z.literal(SCHEMA_VERSION);

/** libvirt accepts any 8-4-4-4-12 hex UUID, not only RFC 4122 variants; PostgreSQL prints them lower-case. */
export const instanceUuidSchema = z.guid().transform((uuid) => uuid.toLowerCase());

/** Ids virtsync mints itself (crypto.randomUUID). */
export const messageIdSchema = z.uuid();

/** ISO 8601 with an offset, within years PostgreSQL and JavaScript agree on. */
export const timestampSchema = z.iso
  .datetime({ offset: true })
  .refine((value) => {
    const ms = Date.parse(value);
    return ms >= Date.UTC(1970, 0, 1) && ms < Date.UTC(10_000, 0, 1);
  }, 'timestamp out of range (1970 to 9999)');

export const powerStateSchema = z.literal([...POWER_STATES]);

export const vmStateSchema = z.enum(VmState);

/** A look's place in its host's order: epoch from the database at agent start, sequence within it. */
export const lookOrderSchema = z.object({
  epoch: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
});
