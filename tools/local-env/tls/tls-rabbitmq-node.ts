/**
 * A RabbitMQ node of the test's own (the engines harness, tools/local-env/engines) that speaks
 * TLS only: no plain-text AMQP listener, peer verification with a mandatory client
 * certificate, logins by certificate CN (rabbitmq_auth_mechanism_ssl, EXTERNAL) or by
 * password (PLAIN, still over TLS), and the management API on a port of its own.
 * `plainText` adds a plain listener beside it (bench:tls-cost compares the two).
 */
import { freePorts } from '../engines/free-port.ts';
import { startRabbitNode } from '../engines/rabbitmq-node.ts';
import type { TestCertificates } from './test-certificates.ts';

export interface TlsRabbitmqNode {
  nodeName: string;
  amqpsPort: number;
  /** The plain-text listener, only when asked for. */
  amqpPort: number | undefined;
  managementUrl: string;
  /** rabbitmqctl against this node. */
  ctl(args: string[]): Promise<string>;
  stop(): Promise<void>;
}

export async function startTlsRabbitmqNode(options: { certificates: TestCertificates; plainText?: boolean }): Promise<TlsRabbitmqNode> {
  const { certificates } = options;
  const [amqpsPort, managementPort] = (await freePorts(2)) as [number, number];
  const node = await startRabbitNode({
    plainTcp: options.plainText === true,
    plugins: ['rabbitmq_management', 'rabbitmq_auth_mechanism_ssl'],
    extraConfig: [
      `listeners.ssl.1 = 127.0.0.1:${amqpsPort}`,
      `ssl_options.cacertfile = ${certificates.caFile}`,
      `ssl_options.certfile = ${certificates.server.certFile}`,
      `ssl_options.keyfile = ${certificates.server.keyFile}`,
      'ssl_options.verify = verify_peer',
      'ssl_options.fail_if_no_peer_cert = true',
      'auth_mechanisms.1 = EXTERNAL',
      'auth_mechanisms.2 = PLAIN',
      'ssl_cert_login_from = common_name',
      `management.tcp.port = ${managementPort}`,
      'management.tcp.ip = 127.0.0.1',
      'loopback_users = none',
    ],
  });
  return {
    nodeName: node.nodeName,
    amqpsPort,
    amqpPort: options.plainText === true ? node.port : undefined,
    managementUrl: `http://127.0.0.1:${managementPort}/api`,
    ctl: (args) => node.ctl(args),
    stop: () => node.remove(),
  };
}
