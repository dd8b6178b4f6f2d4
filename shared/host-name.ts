import { z } from 'zod';

/**
 * A compute host's name as the cloud records it (short name or FQDN). Letters, digits,
 * `-` and `_`, in dot-separated labels: nothing that is special in an AMQP topic pattern.
 */
export const hostNameSchema = z
  .string()
  .max(253)
  .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}(\.[A-Za-z0-9_-]{1,63})*$/, 'not a valid host name');

/**
 * Topic routing keys use `.` as a word separator, so a host is one word: `.` becomes `_`
 * and `_` becomes `~`. `~` is not in the host-name alphabet, so each character of the
 * word names exactly one character of the host and two hosts never share a key (`a.b` is
 * `a_b`, `a_b` is `a~b`). FQDNs keep the keys they had before `_` was escaped.
 */
export function hostRoutingWord(host: string): string {
  return host.replaceAll('_', '~').replaceAll('.', '_');
}
