/**
 * A RabbitMQ node of the test's own that speaks TLS only: no plain-text AMQP listener,
 * peer verification with a mandatory client certificate, logins by certificate CN
 * (rabbitmq_auth_mechanism_ssl, EXTERNAL) or by password (PLAIN, still over TLS), and the
 * management API on a port of its own. The machine's shared node is never touched: this
 * node has its own name, ports, data directory, config files and Erlang cookie
 * (HOME points into its directory, and every rabbitmqctl call uses the same HOME).
 */
import { execFile } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './free-port.ts';
import type { TestCertificates } from './test-certificates.ts';

const run = promisify(execFile);
const SBIN = '/usr/lib/rabbitmq/bin';

export interface TlsRabbitmqNode {
  nodeName: string;
  amqpsPort: number;
  /** A plain-text listener too, only when asked (bench:tls-cost compares the two). */
  amqpPort: number | undefined;
  managementUrl: string;
  /** rabbitmqctl against this node. */
  ctl(args: string[]): Promise<string>;
  stop(): Promise<void>;
}

export async function startTlsRabbitmqNode(options: { dir: string; certificates: TestCertificates; plainText?: boolean }): Promise<TlsRabbitmqNode> {
  const { dir, certificates } = options;
  await mkdir(dir, { recursive: true });
  const [amqpsPort, managementPort, distPort] = [await freePort(), await freePort(), await freePort()];
  const amqpPort = options.plainText === true ? await freePort() : undefined;
  const nodeName = `virtsync-sec-${path.basename(dir)}@localhost`;
  const configFile = path.join(dir, 'rabbitmq.conf');
  await writeFile(
    configFile,
    [
      amqpPort === undefined ? 'listeners.tcp = none' : `listeners.tcp.1 = 127.0.0.1:${amqpPort}`,
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
      '',
    ].join('\n'),
  );
  await writeFile(path.join(dir, 'enabled_plugins'), '[rabbitmq_management,rabbitmq_auth_mechanism_ssl].\n');
  await writeFile(path.join(dir, 'rabbitmq-env.conf'), '');
  const env = {
    ...process.env,
    HOME: dir,
    RABBITMQ_NODENAME: nodeName,
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_MNESIA_BASE: path.join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: path.join(dir, 'log'),
    RABBITMQ_PID_FILE: path.join(dir, 'rabbit.pid'),
    RABBITMQ_ENABLED_PLUGINS_FILE: path.join(dir, 'enabled_plugins'),
    RABBITMQ_CONFIG_FILE: configFile,
    RABBITMQ_ADVANCED_CONFIG_FILE: path.join(dir, 'advanced.config'),
    RABBITMQ_CONF_ENV_FILE: path.join(dir, 'rabbitmq-env.conf'),
  };
  // cwd in the node's directory: an Erlang VM that crashes writes erl_crash.dump there, not in the checkout.
  const ctl = async (args: string[]): Promise<string> => (await run(`${SBIN}/rabbitmqctl`, ['-n', nodeName, ...args], { env, cwd: dir })).stdout;
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await ctl(['stop']).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await run(`${SBIN}/rabbitmq-server`, ['-detached'], { env, cwd: dir });
    await ctl(['wait', '--timeout', '120', env.RABBITMQ_PID_FILE]);
    await ctl(['await_startup', '--timeout', '120']);
  } catch (err) {
    await stop();
    throw err;
  }
  return { nodeName, amqpsPort, amqpPort, managementUrl: `http://127.0.0.1:${managementPort}/api`, ctl, stop };
}
