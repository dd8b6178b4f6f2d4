import amqp, { type AmqpConnectionManager } from 'amqp-connection-manager';
import { credentials } from 'amqplib';
import type { TlsFiles } from '../config.ts';
import type { Logger } from '../logging.ts';
import { brokerUrls } from './broker-urls.ts';
import { brokerConnections, brokerDisconnects } from '../metrics.ts';
import { readTlsOptions } from '../tls-options.ts';

export type BusConnection = AmqpConnectionManager;

/**
 * One broker connection per process, to one node or to any node of a cluster (`url` may
 * list several, comma-separated). amqp-connection-manager reconnects on its own; each
 * channel re-runs its setup (topology) and re-registers its consumers after a reconnect.
 * With `tls`, the URL is amqps:// and the broker is verified against the CA; a client
 * certificate with no password in the URL logs in as the certificate's CN (EXTERNAL).
 */
export function connectBus(options: { url: string; name: string; log: Logger; tls?: TlsFiles | undefined }): BusConnection {
  const log = options.log.child({ component: 'bus' });
  // A cluster's nodes: amqp-connection-manager connects to the first that answers and moves on to the next when it loses one.
  const connection = amqp.connect(brokerUrls(options.url), {
    heartbeatIntervalInSeconds: 5,
    reconnectTimeInSeconds: 1,
    // Without TCP_NODELAY a small publish waits for the broker's delayed ACK (~40 ms) behind the
    // previous one: it made a host sync four times slower (docs/performance.md).
    connectionOptions: { noDelay: true, clientProperties: { connection_name: options.name }, ...tlsSocketOptions(options.url, options.tls) },
  });
  connection.on('connect', () => {
    brokerConnections.inc();
    log.info('broker connected');
  });
  connection.on('disconnect', ({ err }) => {
    brokerDisconnects.inc();
    log.warn({ err, hint: brokerFailureHint(options.url, err) }, 'broker connection lost, reconnecting');
  });
  connection.on('connectFailed', ({ err }) => log.warn({ err, hint: brokerFailureHint(options.url, err) }, 'broker connection attempt failed'));
  connection.on('blocked', ({ reason }) => log.warn({ reason }, 'broker blocked publishing'));
  connection.on('unblocked', () => log.info('broker unblocked publishing'));
  return connection;
}

function tlsSocketOptions(url: string, tls: TlsFiles | undefined): object {
  if (tls === undefined) return {};
  // Every node of a cluster is reached with the same credentials: the first URL says which.
  const certificateLogin = tls.certFile !== undefined && new URL(brokerUrls(url)[0] ?? url).password === '';
  return { ...readTlsOptions(tls), ...(certificateLogin ? { credentials: credentials.external() } : {}) };
}

/**
 * What a failed connection most likely means, when it is not obvious from the error: a
 * plain-text client talking to a TLS-only listener only sees the socket close.
 */
export function brokerFailureHint(url: string, err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined;
  if (url.startsWith('amqp:') && /closed abruptly|ECONNRESET/.test(err.message)) {
    return 'the broker closed a plain-text connection during the handshake: it may accept TLS only (use amqps:// and AMQP_CA_FILE)';
  }
  if (/ACCESS_REFUSED|certificate/i.test(err.message)) return 'the broker refused this identity (user, password or client certificate)';
  return undefined;
}
