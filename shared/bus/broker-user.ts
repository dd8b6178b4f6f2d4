import type { TlsFiles } from '../config.ts';
import { certificateCommonName } from '../tls-options.ts';

/**
 * The broker user a connection logs in as: the URL's user, or with a client certificate and
 * no password the certificate's CN (EXTERNAL), or amqplib's default `guest`.
 */
export function brokerUser(url: string, tls: TlsFiles | undefined): string {
  const parsed = new URL(url);
  if (parsed.username !== '' && parsed.password !== '') return decodeURIComponent(parsed.username);
  if (tls?.certFile !== undefined) return certificateCommonName(tls.certFile) ?? 'guest';
  return parsed.username === '' ? 'guest' : decodeURIComponent(parsed.username);
}
