import amqp, { type AmqpConnectionManager } from 'amqp-connection-manager';
import { credentials } from 'amqplib';
import type { TlsFiles } from '../config.ts';
import type { ReadinessCheck } from '../http-server.ts';
import type { Logger } from '../logging.ts';
import { brokerUrls } from './broker-urls.ts';
import { brokerConnections, brokerDisconnects } from '../metrics.ts';
import { backoffDelayMs } from '../retry.ts';
import { readTlsOptions } from '../tls-options.ts';
import { classifyBrokerFailure } from './broker-failure.ts';
import { registerConnection } from './queue-declaration.ts';

export type BusConnection = AmqpConnectionManager;

/** Reconnect waits: 1-2 s at first, doubling (with jitter) up to 15-30 s while the broker stays away. */
const RECONNECT_BACKOFF = { initialDelayMs: 2_000, maxDelayMs: 30_000 };

const healthOf = new WeakMap<BusConnection, () => ReadinessCheck>();

/** Connected, or why not (a refused login or vhost is named as such). */
export function brokerHealth(connection: BusConnection): ReadinessCheck {
  return healthOf.get(connection)?.() ?? { ok: connection.isConnected() };
}

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
    reconnectTimeInSeconds: RECONNECT_BACKOFF.initialDelayMs / 1000,
    // Without TCP_NODELAY a small publish waits for the broker's delayed ACK (~40 ms) behind the
    // previous one: it made a host sync four times slower (docs/performance.md).
    connectionOptions: { noDelay: true, clientProperties: { connection_name: options.name }, ...tlsSocketOptions(options.url, options.tls) },
  });
  let failures = 0;
  let lastFailure: string | undefined;
  // amqp-connection-manager reads reconnectTimeInSeconds after emitting each of these events.
  const backOff = (): void => {
    failures++;
    connection.reconnectTimeInSeconds = backoffDelayMs(failures, RECONNECT_BACKOFF) / 1000;
  };
  connection.on('connect', () => {
    failures = 0;
    lastFailure = undefined;
    connection.reconnectTimeInSeconds = RECONNECT_BACKOFF.initialDelayMs / 1000;
    // Before any channel's setup runs (their listeners were added after this one).
    const model = connection.connection;
    if (model !== undefined) {
      registerConnection(model, (queue, detail) =>
        log.warn({ queue, detail }, 'queue declared by an older virtsync with other arguments, used as it is: recreate it (docs/operations.md, upgrading deployed queues)'),
      );
    }
    brokerConnections.inc();
    log.info('broker connected');
  });
  connection.on('disconnect', ({ err }) => {
    backOff();
    brokerDisconnects.inc();
    lastFailure = classifyBrokerFailure(err).reason;
    log.warn({ err, hint: brokerFailureHint(options.url, err), retryInMs: connection.reconnectTimeInSeconds * 1000 }, 'broker connection lost, reconnecting');
  });
  connection.on('connectFailed', ({ err }) => {
    backOff();
    const { kind, reason } = classifyBrokerFailure(err);
    lastFailure = reason;
    const fields = { err, kind, reason, hint: brokerFailureHint(options.url, err), retryInMs: Math.round(connection.reconnectTimeInSeconds * 1000) };
    // A refusal will not pass by itself: say so loudly, every time.
    if (kind === 'unreachable') log.warn(fields, 'broker connection attempt failed');
    else log.error(fields, 'broker refused the connection: check credentials, vhost and permissions');
  });
  connection.on('blocked', ({ reason }) => log.warn({ reason }, 'broker blocked publishing'));
  connection.on('unblocked', () => log.info('broker unblocked publishing'));
  healthOf.set(connection, () => (connection.isConnected() ? { ok: true } : { ok: false, reason: lastFailure ?? 'not connected yet' }));
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
  if (/certificate|unknown ca/i.test(err.message)) return 'the TLS handshake failed on a certificate: check AMQP_CA_FILE, AMQP_CERT_FILE and AMQP_KEY_FILE';
  return undefined;
}
