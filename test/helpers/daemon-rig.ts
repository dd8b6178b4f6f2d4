/**
 * What a test of services on the shared libvirtd starts from: a database and a RabbitMQ vhost of
 * the test file's own, a probe on that vhost, and a second libvirt connection to define, start
 * and change domains the way an operator's virsh would. `close` removes it all, domains included.
 */
import { type DaemonDomains, ensureLibvirtd, openDaemonDomains } from '../../tools/local-env/libvirtd.ts';
import { createTestVhost, type TestVhost } from '../../tools/local-env/vhost.ts';
import { type BusProbe, openBusProbe } from './bus-probe.ts';
import { createTestDatabase, type TestDatabase } from './test-database.ts';

export interface DaemonRig {
  database: TestDatabase;
  vhost: TestVhost;
  probe: BusProbe;
  domains: DaemonDomains;
  close(): Promise<void>;
}

export async function openDaemonRig(): Promise<DaemonRig> {
  await ensureLibvirtd();
  const database = await createTestDatabase();
  const vhost = await createTestVhost();
  const probe = await openBusProbe(vhost.amqpUrl);
  const domains = await openDaemonDomains();
  return {
    database,
    vhost,
    probe,
    domains,
    async close() {
      await domains.removeAll();
      await domains.close();
      await probe.close();
      await vhost.delete();
      await database.drop();
    },
  };
}
