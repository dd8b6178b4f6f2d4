import amqp, { type AmqpConnectionManager } from 'amqp-connection-manager';
import type { Logger } from '../logging.ts';
import { brokerUrls } from './broker-urls.ts';
import { brokerConnections, brokerDisconnects } from '../metrics.ts';

export type BusConnection = AmqpConnectionManager;

/**
 * One broker connection per process, to one node or to any node of a cluster (`url` may
 * list several, comma-separated). amqp-connection-manager reconnects on its own; each
 * channel re-runs its setup (topology) and re-registers its consumers after a reconnect.
 */
export function connectBus(options: { url: string; name: string; log: Logger }): BusConnection {
  const log = options.log.child({ component: 'bus' });
  // A cluster's nodes: amqp-connection-manager connects to the first that answers and moves on to the next when it loses one.
  const connection = amqp.connect(brokerUrls(options.url), {
    heartbeatIntervalInSeconds: 5,
    reconnectTimeInSeconds: 1,
    // Without TCP_NODELAY a small publish waits for the broker's delayed ACK (~40 ms) behind the
    // previous one: it made a host sync four times slower (docs/performance.md).
    connectionOptions: { noDelay: true, clientProperties: { connection_name: options.name } },
  });
  connection.on('connect', () => {
    brokerConnections.inc();
    log.info('broker connected');
  });
  connection.on('disconnect', ({ err }) => {
    brokerDisconnects.inc();
    log.warn({ err }, 'broker connection lost, reconnecting');
  });
  connection.on('connectFailed', ({ err }) => log.warn({ err }, 'broker connection attempt failed'));
  connection.on('blocked', ({ reason }) => log.warn({ reason }, 'broker blocked publishing'));
  connection.on('unblocked', () => log.info('broker unblocked publishing'));
  return connection;
}
