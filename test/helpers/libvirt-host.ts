/** A libvirt test-driver host of the test's own: node XML in a temp dir, opened as test:///<file>. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { renderNodeXml, type SimulatedDomain } from '../../tools/fleet/node-xml.ts';

export interface LibvirtHosts {
  dir: string;
  /** The LIBVIRT_URI template for these hosts. */
  uriTemplate: string;
  write(host: string, domains: readonly SimulatedDomain[]): Promise<string>;
  remove(): Promise<void>;
}

export async function createLibvirtHosts(): Promise<LibvirtHosts> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'virtsync-libvirt-'));
  return {
    dir,
    uriTemplate: `test://${dir}/{host}.xml`,
    async write(host, domains) {
      const file = path.join(dir, `${host}.xml`);
      await writeFile(file, renderNodeXml(domains));
      return `test://${file}`;
    },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
