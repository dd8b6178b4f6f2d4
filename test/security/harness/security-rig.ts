/**
 * The security suite's world: a CA of its own, a TLS-only RabbitMQ node and a TLS-only
 * PostgreSQL cluster, provisioned the way an operator would (`virtsync migrate`,
 * `virtsync bus setup`, `virtsync hosts add <host>` per host), a writer with its own broker
 * user and database login (passwords, over TLS), and one real agent process per host, each
 * logging in with its own certificate (CN = host) on the bus and in the database.
 * Every process's output is kept in `logDir`, for the test that greps it for passwords.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import amqplib, { type ChannelModel, type Message } from 'amqplib';
import pg from 'pg';
import { Queue } from '../../../shared/bus/topology.ts';
import { type ServiceProcess, startServiceProcess } from '../../../tools/demo/service-process.ts';
import { waitFor } from '../../../tools/wait-for.ts';
import { type CliResult, runCli } from '../../helpers/cli-process.ts';
import { createLibvirtHosts, type LibvirtHosts } from '../../helpers/libvirt-host.ts';
import type { SimulatedDomain } from '../../../tools/fleet/node-xml.ts';
import { createTestCertificates, type CertificateFiles, type TestCertificates } from '../../../tools/local-env/tls/test-certificates.ts';
import { startTlsPostgresCluster, type TlsPostgresCluster } from '../../../tools/local-env/tls/tls-postgres-cluster.ts';
import { startTlsRabbitmqNode, type TlsRabbitmqNode } from '../../../tools/local-env/tls/tls-rabbitmq-node.ts';

export const VHOST = 'virtsync';
const DATABASE = 'virtsync';
const OPERATOR = 'virtsync-operator';
const WRITER = 'virtsync-writer';

/** The writer's broker permissions: consume its two queues, publish change events and dead letters; configure nothing. */
const WRITER_PERMISSIONS = { configure: '^$', write: '^virtsync\\.(changes|dead-letter)$', read: '^virtsync\\.state-writer(\\.events)?$' };

export interface SecurityRig {
  certificates: TestCertificates;
  broker: TlsRabbitmqNode;
  database: TlsPostgresCluster;
  /** Every password this run used: none may appear in any log. */
  passwords: readonly string[];
  logDir: string;
  /** amqps:// URL of the vhost, without credentials. */
  amqpsUrl: string;
  /** postgres:// URL of the database over TCP (TLS), for `user` with `password` if given. */
  databaseUrl(user: string, password?: string): string;
  /** The operator's environment for the CLI (TLS on, passwords in the URLs). */
  operatorEnv: Record<string, string>;
  /** The superuser over the Unix socket: the test's own view of the rows. */
  admin: pg.Client;
  agentEnv(host: string): Promise<Record<string, string>>;
  /** Runs the CLI; its output goes to the log directory too. */
  cli(args: readonly string[], env: Record<string, string>): Promise<CliResult>;
  startWriter(): ServiceProcess;
  startAgent(host: string): Promise<ServiceProcess>;
  writeHost(host: string, domains: readonly SimulatedDomain[]): Promise<void>;
  /** Waits until the dead-letter queue holds `count` messages and takes them (as the operator). */
  deadLetters(count: number): Promise<Message[]>;
  /** Every line every process wrote, for the redaction check. */
  allLogs(): Promise<string>;
  stop(): Promise<void>;
}

export async function startSecurityRig(): Promise<SecurityRig> {
  const id = randomBytes(3).toString('hex');
  const dir = path.join(os.tmpdir(), `virtsync-security-${id}`);
  const logDir = path.join(dir, 'logs');
  await mkdir(logDir, { recursive: true });
  const cleanups: Array<() => Promise<unknown>> = [() => rm(dir, { recursive: true, force: true })];
  const processes: ServiceProcess[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(processes.map((process) => process.stop()));
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  };
  try {
    const certificates = await createTestCertificates(path.join(dir, 'certs'));
    const [broker, database] = await Promise.all([startTlsRabbitmqNode({ certificates }), startTlsPostgresCluster({ certificates })]);
    cleanups.push(() => broker.stop(), () => database.stop());
    const libvirt: LibvirtHosts = await createLibvirtHosts();
    cleanups.push(() => libvirt.remove());

    const passwords = { operator: secret(), operatorDatabase: secret(), writerBroker: secret(), writerDatabase: secret() };
    await broker.ctl(['add_vhost', VHOST]);
    await broker.ctl(['add_user', OPERATOR, passwords.operator]);
    await broker.ctl(['set_user_tags', OPERATOR, 'administrator']);
    await broker.ctl(['set_permissions', '-p', VHOST, OPERATOR, '.*', '.*', '.*']);
    await broker.ctl(['add_user', WRITER, passwords.writerBroker]);
    await broker.ctl(['set_permissions', '-p', VHOST, WRITER, WRITER_PERMISSIONS.configure, WRITER_PERMISSIONS.write, WRITER_PERMISSIONS.read]);

    await createDatabase(database.adminUrl('postgres'), DATABASE);
    const admin = new pg.Client({ connectionString: database.adminUrl(DATABASE) });
    await admin.connect();
    cleanups.push(() => admin.end());
    // The operator runs migrations and provisioning over TLS with a password, like everyone else.
    await admin.query(`alter role postgres password '${passwords.operatorDatabase}'`);

    const amqpsUrl = `amqps://localhost:${broker.amqpsPort}/${VHOST}`;
    const databaseUrl = (user: string, password?: string): string =>
      `postgres://${encodeURIComponent(user)}${password === undefined ? '' : `:${encodeURIComponent(password)}`}@localhost:${database.port}/${DATABASE}`;
    const operatorCert = await certificates.client(OPERATOR);
    const operatorEnv = {
      AMQP_URL: withCredentials(amqpsUrl, OPERATOR, passwords.operator),
      ...tlsEnv('AMQP', certificates.caFile, operatorCert),
      DATABASE_URL: databaseUrl('postgres', passwords.operatorDatabase),
      DATABASE_CA_FILE: certificates.caFile,
      RABBITMQ_MANAGEMENT_URL: withCredentials(broker.managementUrl, OPERATOR, passwords.operator),
    };
    let cliRuns = 0;
    const cli = async (args: readonly string[], env: Record<string, string>): Promise<CliResult> => {
      const result = await runCli(args, env, 60_000);
      cliRuns += 1;
      await writeFile(path.join(logDir, `cli-${cliRuns}-${args.join('-')}.log`), `${result.stdout}\n${result.stderr}`);
      return result;
    };
    const mustSucceed = async (args: readonly string[]): Promise<void> => {
      const result = await cli(args, operatorEnv);
      if (result.code !== 0) throw new Error(`virtsync ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
    };
    await mustSucceed(['migrate']);
    await admin.query(`create role "${WRITER}" login password '${passwords.writerDatabase}' in role virtsync_writer`);
    await mustSucceed(['bus', 'setup']);

    const agentEnv = async (host: string): Promise<Record<string, string>> => {
      const certificate = await certificates.client(host);
      return {
        AGENT_HOSTS: host,
        LIBVIRT_URI: libvirt.uriTemplate,
        AGENT_LIFECYCLE_EVENTS: 'false',
        BUS_TOPOLOGY: 'verify',
        AMQP_URL: amqpsUrl,
        ...tlsEnv('AMQP', certificates.caFile, certificate),
        DATABASE_URL: databaseUrl(`agent:${host}`),
        ...tlsEnv('DATABASE', certificates.caFile, certificate),
      };
    };
    const writerCert = await certificates.client(WRITER);
    let operatorBus: ChannelModel | undefined;
    cleanups.push(async () => operatorBus?.close());
    const rig: SecurityRig = {
      certificates,
      broker,
      database,
      passwords: Object.values(passwords),
      logDir,
      amqpsUrl,
      databaseUrl,
      operatorEnv,
      admin,
      agentEnv,
      cli,
      startWriter() {
        const writer = startServiceProcess({
          service: 'state-writer',
          logDir,
          env: {
            AMQP_URL: withCredentials(amqpsUrl, WRITER, passwords.writerBroker),
            ...tlsEnv('AMQP', certificates.caFile, writerCert),
            DATABASE_URL: databaseUrl(WRITER, passwords.writerDatabase),
            DATABASE_CA_FILE: certificates.caFile,
            BUS_TOPOLOGY: 'verify',
            WRITER_REQUIRE_PUBLISHER: 'true',
            LOG_LEVEL: 'debug',
          },
        });
        processes.push(writer);
        return writer;
      },
      async startAgent(host) {
        const agent = startServiceProcess({ service: 'sync-agent', instance: host, logDir, env: { ...(await agentEnv(host)), LOG_LEVEL: 'debug' } });
        processes.push(agent);
        return agent;
      },
      async writeHost(host, domains) {
        await libvirt.write(host, domains);
      },
      async deadLetters(count) {
        operatorBus ??= await amqplib.connect(operatorEnv.AMQP_URL, { ca: [await readFile(certificates.caFile)], cert: await readFile(operatorCert.certFile), key: await readFile(operatorCert.keyFile) });
        const channel = await operatorBus.createChannel();
        try {
          await waitFor(`${count} dead letters`, async () => (await channel.checkQueue(Queue.deadLetter)).messageCount >= count, { timeoutMs: 30_000, intervalMs: 200 });
          const taken: Message[] = [];
          for (let message = await channel.get(Queue.deadLetter); message !== false; message = await channel.get(Queue.deadLetter)) {
            channel.ack(message);
            taken.push(message);
          }
          return taken;
        } finally {
          await channel.close();
        }
      },
      async allLogs() {
        const files = await readdir(logDir);
        const texts = await Promise.all(files.map((file) => readFile(path.join(logDir, file), 'utf8')));
        return texts.join('\n');
      },
      stop,
    };
    return rig;
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Waits for a service's first log line with `msg` (it writes JSON lines to its log file). */
export async function waitForLogLine(process: ServiceProcess, msg: string, timeoutMs = 60_000): Promise<void> {
  await waitFor(`${process.name} to log "${msg}"`, async () => (await readFile(process.logFile, 'utf8').catch(() => '')).includes(`"msg":"${msg}"`), {
    timeoutMs,
    intervalMs: 200,
  });
}

function secret(): string {
  return `pw-${randomBytes(12).toString('hex')}`;
}

function withCredentials(url: string, user: string, password: string): string {
  const parsed = new URL(url);
  parsed.username = encodeURIComponent(user);
  parsed.password = encodeURIComponent(password);
  return parsed.toString();
}

function tlsEnv(prefix: 'AMQP' | 'DATABASE', caFile: string, certificate: CertificateFiles): Record<string, string> {
  return { [`${prefix}_CA_FILE`]: caFile, [`${prefix}_CERT_FILE`]: certificate.certFile, [`${prefix}_KEY_FILE`]: certificate.keyFile };
}

async function createDatabase(adminUrl: string, name: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  await client.query(`create database ${name}`);
  await client.end();
}
