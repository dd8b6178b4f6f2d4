/**
 * Tells a broker that refuses us (wrong credentials, a vhost that does not exist or that
 * the user may not use) from one that is away: the first needs an operator, the second
 * only time. Both are retried; they are logged and reported differently.
 */
export type BrokerFailureKind = 'authentication' | 'vhost' | 'unreachable';

export function classifyBrokerFailure(err: unknown): { kind: BrokerFailureKind; reason: string } {
  const message = err instanceof Error ? err.message : String(err);
  if (/ACCESS.REFUSED|\b403\b/.test(message)) return { kind: 'authentication', reason: `broker refused the credentials: ${message}` };
  // amqplib drops the broker's reply text when the handshake ends at ConnectionOpen, the step that names the vhost.
  if (/NOT.ALLOWED|\b530\b|vhost|Expected ConnectionOpenOk; got <ConnectionClose/i.test(message)) return { kind: 'vhost', reason: `broker refused the vhost (missing, or no permission): ${message}` };
  return { kind: 'unreachable', reason: `broker unreachable: ${message}` };
}
