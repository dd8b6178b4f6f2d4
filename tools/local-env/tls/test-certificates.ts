/**
 * A throw-away certificate authority for one test file, made with the `openssl` CLI as an
 * operator would: a server certificate for `localhost` (and 127.0.0.1) and one client
 * certificate per identity, its CN being the identity (a host name, a service user).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface CertificateFiles {
  certFile: string;
  keyFile: string;
}

export interface TestCertificates {
  caFile: string;
  server: CertificateFiles;
  /** A client certificate whose CN is `commonName`, signed by the CA (made once per name). */
  client(commonName: string): Promise<CertificateFiles>;
  /** A certificate authority nobody trusts, with a client certificate of its own. */
  rogueClient(commonName: string): Promise<CertificateFiles>;
}

async function openssl(args: string[]): Promise<void> {
  await run('openssl', args);
}

async function createAuthority(dir: string, name: string): Promise<{ certFile: string; keyFile: string }> {
  const keyFile = path.join(dir, `${name}.key`);
  const certFile = path.join(dir, `${name}.crt`);
  await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-keyout', keyFile, '-out', certFile]);
  return { certFile, keyFile };
}

async function issue(dir: string, ca: CertificateFiles, commonName: string, extensions: string): Promise<CertificateFiles> {
  const base = path.join(dir, commonName.replaceAll(/[^A-Za-z0-9_.-]/g, '_'));
  const extFile = `${base}.ext`;
  await writeFile(extFile, extensions);
  await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${commonName}`, '-keyout', `${base}.key`, '-out', `${base}.csr`]);
  // A random serial per certificate: -CAcreateserial keeps one serial file per CA, which
  // certificates issued at once read half-written ("Unable to load number", seen in a rehearsal).
  await openssl([
    'x509', '-req', '-in', `${base}.csr`, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-set_serial', `0x${randomBytes(16).toString('hex')}`,
    '-days', '2', '-extfile', extFile, '-out', `${base}.crt`,
  ]);
  return { certFile: `${base}.crt`, keyFile: `${base}.key` };
}

export async function createTestCertificates(dir: string): Promise<TestCertificates> {
  await mkdir(dir, { recursive: true });
  const ca = await createAuthority(dir, 'virtsync-test-ca');
  const server = await issue(dir, ca, 'localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  const clients = new Map<string, Promise<CertificateFiles>>();
  const rogueDir = path.join(dir, 'rogue');
  let rogueCa: Promise<CertificateFiles> | undefined;
  return {
    caFile: ca.certFile,
    server,
    client(commonName) {
      let files = clients.get(commonName);
      if (files === undefined) {
        files = issue(dir, ca, commonName, 'extendedKeyUsage=clientAuth\n');
        clients.set(commonName, files);
      }
      return files;
    },
    async rogueClient(commonName) {
      rogueCa ??= mkdir(rogueDir, { recursive: true }).then(() => createAuthority(rogueDir, 'rogue-ca'));
      return issue(rogueDir, await rogueCa, commonName, 'extendedKeyUsage=clientAuth\n');
    },
  };
}
