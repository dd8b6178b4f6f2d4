/**
 * The shared libvirt daemon (test+unix:///default), started by infra/local/start-libvirtd.sh
 * when it is not running. Domains a test defines there are visible to every process, so
 * tests give them unique names and remove them afterwards.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Hypervisor } from '@unraid/libvirt';

export const LIBVIRTD_URI = 'test+unix:///default';
const SCRIPT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../infra/local/start-libvirtd.sh');

export async function ensureLibvirtd(): Promise<void> {
  await promisify(execFile)('bash', [SCRIPT]);
}

export interface DaemonDomains {
  /** A second, independent connection: what an operator's `virsh` would be. */
  hypervisor: Hypervisor;
  /** Defines and starts a domain; returns its UUID. */
  start(name: string): Promise<string>;
  removeAll(): Promise<void>;
  close(): Promise<void>;
}

export async function openDaemonDomains(): Promise<DaemonDomains> {
  const hypervisor = new Hypervisor({ uri: LIBVIRTD_URI });
  await hypervisor.connectOpen();
  const names: string[] = [];
  return {
    hypervisor,
    async start(name) {
      const uuid = randomUUID();
      const domain = await hypervisor.domainDefineXML(
        `<domain type="test"><name>${name}</name><uuid>${uuid}</uuid><memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>`,
      );
      await hypervisor.domainCreate(domain);
      names.push(name);
      return uuid;
    },
    async removeAll() {
      for (const name of names.splice(0)) {
        try {
          const domain = await hypervisor.domainLookupByName(name);
          await hypervisor.domainDestroy(domain).catch(() => undefined);
          await hypervisor.domainUndefine(domain);
        } catch {
          // Already gone.
        }
      }
    },
    close: () => hypervisor.connectClose(),
  };
}
