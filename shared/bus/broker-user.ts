import type { TlsFiles } from '../config.ts';
import { certificateCommonName } from '../tls-options.ts';
import { brokerUrls } from './broker-urls.ts';

/**
 * The broker user a connection logs in as: the URL's user, or with a client certificate and
 * no password the certificate's CN (EXTERNAL), or amqplib's default `guest`.
 */
export function brokerUser(url: string, tls: TlsFiles | undefined): string {
  // A cluster's nodes share their users: the first URL's is the login.
  const parsed = new URL(brokerUrls(url)[0] ?? url);
  if (parsed.username !== '' && parsed.password !== '') return decodeURIComponent(parsed.username);
  if (tls?.certFile !== undefined) return certificateCommonName(tls.certFile) ?? 'guest';
  return parsed.username === '' ? 'guest' : decodeURIComponent(parsed.username);
}
