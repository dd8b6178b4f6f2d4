/**
 * Secrets out of text: the password of any `scheme://user:password@host` URL. Errors from
 * drivers and from configuration may quote a connection string; they pass through here
 * before they reach a log line or a terminal.
 */
const URL_PASSWORD = /([a-z][a-z0-9+.-]*:\/\/[^\s:@/]*:)[^\s@/]*@/gi;

export const REDACTED = '[redacted]';

export function redactSecrets(text: string): string {
  return text.replace(URL_PASSWORD, `$1${REDACTED}@`);
}
