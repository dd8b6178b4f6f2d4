/**
 * What an attacker holding a compromised host's credentials can do with them: raw AMQP
 * and PostgreSQL connections made with that host's client certificate, outside any
 * virtsync code, and each attempt's outcome as the broker or the server reported it.
 */
import { readFileSync } from 'node:fs';
import amqplib, { type ChannelModel, type Options } from 'amqplib';
import pg from 'pg';
import { coerceError } from '../../../shared/errors.ts';
import type { CertificateFiles } from '../../../tools/local-env/tls/test-certificates.ts';

export type Attempt = { refused: true; reason: string } | { refused: false };

function tlsOptions(caFile: string, certificate: CertificateFiles) {
  return { ca: [readFileSync(caFile)], cert: readFileSync(certificate.certFile), key: readFileSync(certificate.keyFile), rejectUnauthorized: true };
}

export async function connectWithCertificate(url: string, caFile: string, certificate: CertificateFiles): Promise<ChannelModel> {
  const connection = await amqplib.connect(url, { ...tlsOptions(caFile, certificate), credentials: amqplib.credentials.external() });
  connection.on('error', () => undefined);
  return connection;
}

/** Publishes one message on a confirm channel of its own: refused if the broker closes the channel or nacks it. */
export async function attemptPublish(
  connection: ChannelModel,
  exchange: string,
  routingKey: string,
  body: object,
  properties: Options.Publish = {},
): Promise<Attempt> {
  const channel = await connection.createConfirmChannel();
  return new Promise<Attempt>((resolve) => {
    channel.on('error', (err: unknown) => resolve({ refused: true, reason: coerceError(err).message }));
    channel.publish(exchange, routingKey, Buffer.from(JSON.stringify(body)), { persistent: true, contentType: 'application/json', ...properties }, (err) => {
      if (err !== null && err !== undefined) resolve({ refused: true, reason: 'nacked' });
      else void channel.close().then(() => resolve({ refused: false }), () => undefined);
    });
  });
}

/** Runs one channel operation (consume, delete, declare): refused if the broker closes the channel. */
export async function attemptOnChannel(connection: ChannelModel, operation: (channel: amqplib.Channel) => Promise<unknown>): Promise<Attempt> {
  const channel = await connection.createChannel();
  channel.on('error', () => undefined);
  try {
    await operation(channel);
    await channel.close();
    return { refused: false };
  } catch (err) {
    return { refused: true, reason: coerceError(err).message };
  }
}

export async function attemptAmqpConnect(url: string, options: object): Promise<Attempt> {
  try {
    const connection = await amqplib.connect(url, options);
    await connection.close();
    return { refused: false };
  } catch (err) {
    return { refused: true, reason: coerceError(err).message || String(err) };
  }
}

/** A database session as `user`, logged in with the certificate. */
export async function connectDatabaseWithCertificate(port: number, database: string, user: string, caFile: string, certificate: CertificateFiles): Promise<pg.Client> {
  const client = new pg.Client({ host: 'localhost', port, database, user, ssl: tlsOptions(caFile, certificate) });
  await client.connect();
  client.on('error', () => undefined);
  return client;
}

export function externalLogin(caFile: string, certificate: CertificateFiles): object {
  return { ...tlsOptions(caFile, certificate), credentials: amqplib.credentials.external() };
}
