/**
 * The TLS options of a connection from the files the operator mounted (config's TlsFiles):
 * the server is verified against the CA, by name (Node's default checkServerIdentity,
 * which is PostgreSQL's sslmode=verify-full), and our certificate is presented if we have one.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { TlsFiles } from './config.ts';

export interface TlsOptions {
  ca: Buffer[];
  cert?: Buffer;
  key?: Buffer;
  rejectUnauthorized: true;
}

/**
 * A fresh object on every call, one per connection: node-postgres makes `key` non-enumerable on
 * the object it is given, and amqplib copies only enumerable keys, so a shared object would
 * lose its key for whoever comes second.
 */
export function readTlsOptions(files: TlsFiles): TlsOptions {
  const options: TlsOptions = { ca: [readFileSync(files.caFile)], rejectUnauthorized: true };
  if (files.certFile !== undefined && files.keyFile !== undefined) {
    options.cert = readFileSync(files.certFile);
    options.key = readFileSync(files.keyFile);
  }
  return options;
}

/** The CN of a client certificate: the login a certificate-authenticated connection gets. */
export function certificateCommonName(certFile: string): string | undefined {
  const subject = new X509Certificate(readFileSync(certFile)).subject;
  return subject.split('\n').find((part) => part.startsWith('CN='))?.slice('CN='.length);
}
