/**
 * What TLS costs virtsync's connections (issue 16): one RabbitMQ node and one PostgreSQL
 * cluster of the bench's own, each listening both in plain text and over TLS (certificates
 * made with openssl, as the security suite does), the same password user on both paths.
 * Measures, plain vs TLS, alternating so the shared machine's drift hits both alike:
 * - connecting (what a reconnect costs), median of `connects`;
 * - publishing host-observations-sized messages (100 observations, ~10 KB) with confirms,
 *   `inFlight` unconfirmed at a time: messages/s;
 * - the agent's per-host read (100 rows) on one connection, median of `reads`.
 * The other benchmarks run without TLS on the machine's shared engines; this one says what
 * enabling it adds.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import amqplib, { type ChannelModel } from 'amqplib';
import pg from 'pg';
import { PowerState } from '../shared/power-state.ts';
import { createTestCertificates } from '../tools/local-env/tls/test-certificates.ts';
import { startTlsPostgresCluster } from '../tools/local-env/tls/tls-postgres-cluster.ts';
import { startTlsRabbitmqNode } from '../tools/local-env/tls/tls-rabbitmq-node.ts';
import { runBench } from './lib/harness.ts';
import { median } from './lib/stats.ts';

const { values } = parseArgs({
  options: { connects: { type: 'string', default: '20' }, messages: { type: 'string', default: '4000' }, inFlight: { type: 'string', default: '100' }, reads: { type: 'string', default: '2000' } },
});
const connects = Number(values.connects);
const messages = Number(values.messages);
const inFlight = Number(values.inFlight);
const reads = Number(values.reads);
const USER = 'bench';
const PASSWORD = randomBytes(12).toString('hex');

await runBench({ name: 'tls-cost', deadlineMs: 900_000, inputs: { connects, messages, inFlight, reads } }, async (context) => {
  const dir = path.join(os.tmpdir(), `virtsync-tls-cost-${randomBytes(3).toString('hex')}`);
  context.defer(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));
  const certificates = await createTestCertificates(path.join(dir, 'certs'));
  const client = await certificates.client(USER);
  // A fresh object per connection: pg makes `key` non-enumerable on the object it is given, and amqplib copies enumerable keys only.
  const tls = () => ({ ca: [readFileSync(certificates.caFile)], cert: readFileSync(client.certFile), key: readFileSync(client.keyFile), rejectUnauthorized: true });
  context.progress('starting a RabbitMQ node and a PostgreSQL cluster with plain and TLS listeners');
  const broker = await startTlsRabbitmqNode({ certificates, plainText: true });
  context.defer('stop the RabbitMQ node', () => broker.stop());
  const database = await startTlsPostgresCluster({ certificates, plainText: true });
  context.defer('drop the PostgreSQL cluster', () => database.stop());
  await broker.ctl(['add_user', USER, PASSWORD]);
  await broker.ctl(['set_permissions', USER, '.*', '.*', '.*']);
  const admin = new pg.Client({ connectionString: database.adminUrl('postgres') });
  await admin.connect();
  await admin.query(`create role ${USER} login password '${PASSWORD}'`);
  await admin.query('create table instances (uuid uuid primary key, host text not null, power_state int not null, vm_state text not null)');
  await admin.query('create index on instances (host)');
  await admin.query(
    `insert into instances select gen_random_uuid(), 'host-' || (i % 1000), ${PowerState.RUNNING}, 'active' from generate_series(1, 100000) as i`,
  );
  await admin.query(`grant select on instances to ${USER}`);
  await admin.end();

  const paths = {
    plain: {
      amqp: () => amqplib.connect(`amqp://${USER}:${PASSWORD}@localhost:${broker.amqpPort}/`),
      pg: () => new pg.Client({ host: 'localhost', port: database.port, user: USER, password: PASSWORD, database: 'postgres', ssl: false }),
    },
    tls: {
      amqp: () => amqplib.connect(`amqps://${USER}:${PASSWORD}@localhost:${broker.amqpsPort}/`, tls()),
      pg: () => new pg.Client({ host: 'localhost', port: database.port, user: USER, password: PASSWORD, database: 'postgres', ssl: tls() }),
    },
  };
  type PathName = keyof typeof paths;
  const names: PathName[] = ['plain', 'tls'];

  const connectMs: Record<string, number[]> = {};
  for (let round = 0; round < connects; round++) {
    for (const name of names) {
      let started = performance.now();
      const connection = await paths[name].amqp();
      (connectMs[`amqp-${name}`] ??= []).push(performance.now() - started);
      await connection.close();
      started = performance.now();
      const session = paths[name].pg();
      await session.connect();
      (connectMs[`pg-${name}`] ??= []).push(performance.now() - started);
      await session.end();
    }
  }

  // ~10 KB: a host observations message with 100 observations.
  const body = Buffer.from(JSON.stringify({ observations: Array.from({ length: 100 }, () => ({ observationId: randomUUID(), instanceUuid: randomUUID(), powerState: 4 })) }));
  const publishRate = async (connection: ChannelModel, count: number): Promise<number> => {
    const channel = await connection.createConfirmChannel();
    const { queue } = await channel.assertQueue('', { exclusive: true });
    const started = performance.now();
    for (let sent = 0; sent < count; sent += inFlight) {
      for (let i = 0; i < Math.min(inFlight, count - sent); i++) channel.sendToQueue(queue, body, { persistent: true });
      await channel.waitForConfirms();
    }
    const seconds = (performance.now() - started) / 1000;
    await channel.close();
    return count / seconds;
  };
  const rates: Record<string, number[]> = {};
  const readMs: Record<string, number[]> = {};
  const amqp = { plain: await paths.plain.amqp(), tls: await paths.tls.amqp() };
  const sessions = { plain: paths.plain.pg(), tls: paths.tls.pg() };
  await Promise.all([sessions.plain.connect(), sessions.tls.connect()]);
  context.defer('close the connections', async () => {
    await Promise.all([amqp.plain.close(), amqp.tls.close(), sessions.plain.end(), sessions.tls.end()]);
  });
  for (const name of names) await publishRate(amqp[name], 200);
  for (let round = 0; round < 4; round++) {
    for (const name of names) (rates[name] ??= []).push(await publishRate(amqp[name], messages / 4));
  }
  for (let round = 0; round < reads; round++) {
    for (const name of names) {
      const started = performance.now();
      const { rowCount } = await sessions[name].query('select uuid, power_state, vm_state from instances where host = $1', [`host-${round % 1000}`]);
      (readMs[name] ??= []).push(performance.now() - started);
      if (rowCount !== 100) throw new Error(`read ${rowCount} rows, expected 100`);
    }
  }

  console.log('| measure | plain | TLS |');
  console.log('| --- | --- | --- |');
  const row = (label: string, plain: number, withTls: number, unit: string): void => console.log(`| ${label} | ${plain.toFixed(2)} ${unit} | ${withTls.toFixed(2)} ${unit} |`);
  row(`AMQP connect (median of ${connects})`, median(connectMs['amqp-plain'] ?? []), median(connectMs['amqp-tls'] ?? []), 'ms');
  row(`PostgreSQL connect (median of ${connects})`, median(connectMs['pg-plain'] ?? []), median(connectMs['pg-tls'] ?? []), 'ms');
  row(`publish ~${Math.round(body.length / 1024)} KB messages with confirms, ${inFlight} in flight (median of 4 × ${messages / 4})`, median(rates.plain ?? []), median(rates.tls ?? []), 'msg/s');
  row(`agent read, 100 rows (median of ${reads})`, median(readMs.plain ?? []), median(readMs.tls ?? []), 'ms');
  context.result('amqp-connect-tls-ms', median(connectMs['amqp-tls'] ?? []), 'ms');
  context.result('publish-tls-ratio', median(rates.tls ?? []) / median(rates.plain ?? []), 'of plain-text throughput');
  context.result('read-tls-ms', median(readMs.tls ?? []), 'ms');
});
