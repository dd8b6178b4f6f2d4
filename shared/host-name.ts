import { z } from 'zod';

/**
 * A compute host's name as the cloud records it (short name or FQDN). Letters, digits,
 * `-` and `_`, in dot-separated labels: nothing that is special in an AMQP topic pattern.
 */
export const hostNameSchema = z
  .string()
  .max(253)
  .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}(\.[A-Za-z0-9_-]{1,63})*$/, 'not a valid host name');

/** Topic routing keys use `.` as a word separator, so a host is one word with dots as `_`. */
export function hostRoutingWord(host: string): string {
  return host.replaceAll('.', '_');
}
