/**
 * The libvirt reader against real libvirt test:/// hosts: every virDomainState the test
 * driver can hold is read as that PowerState, shut-off domains are counted, UUIDs come back
 * lower-case, a host that cannot be opened is a retryable hypervisor DependencyError, and
 * the reader reconnects on its own once the host is there. On the shared libvirtd, domains
 * flipping state while the reader lists them are still read, each once, never as missing.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Writable } from 'node:stream';
import { createLibvirtReader, type HypervisorReader } from '../../../../services/sync-agent/hypervisor-reader.ts';
import { DependencyError } from '../../../../shared/errors.ts';
import { createLogger } from '../../../../shared/logging.ts';
import { PowerState } from '../../../../shared/power-state.ts';
import type { SimulatedDomain } from '../../../../tools/fleet/node-xml.ts';
import { createLibvirtHosts, type LibvirtHosts } from '../../../helpers/libvirt-host.ts';
import { ensureLibvirtd, LIBVIRTD_URI, openDaemonDomains } from '../../../helpers/libvirtd.ts';
import { testLogger } from '../../../helpers/test-logger.ts';

/** libvirt's virDomainState: 0 NOSTATE .. 7 PMSUSPENDED, the same codes as PowerState. */
const LIBVIRT_STATES = [
  PowerState.NOSTATE,
  PowerState.RUNNING,
  PowerState.BLOCKED,
  PowerState.PAUSED,
  PowerState.SHUTDOWN,
  PowerState.SHUTOFF,
  PowerState.CRASHED,
  PowerState.SUSPENDED,
] as const;

const suffix = randomBytes(3).toString('hex');
let hosts: LibvirtHosts;
const readers: HypervisorReader[] = [];

function openReader(uri: string): HypervisorReader {
  const reader = createLibvirtReader({ uri, concurrency: 3, log: testLogger });
  readers.push(reader);
  return reader;
}

before(async () => {
  hosts = await createLibvirtHosts();
});

after(async () => {
  for (const reader of readers) await reader.close();
  await hosts?.remove();
});

describe('createLibvirtReader on a libvirt test:/// host', () => {
  // Upper-case in the node XML: the reader must hand back the lower-case form PostgreSQL prints.
  const domains: SimulatedDomain[] = LIBVIRT_STATES.map((state) => ({ uuid: randomUUID().toUpperCase(), state }));

  test('reads every runstate 0..7 as that PowerState, counts every domain, lower-cases UUIDs', async () => {
    const reader = openReader(await hosts.write(`states-${suffix}`, domains));
    const snapshot = await reader.read();

    assert.equal(snapshot.domainCount, domains.length, 'shut-off domains are listed too');
    assert.equal(snapshot.unreadable.size, 0);
    assert.equal(snapshot.states.size, domains.length);
    for (const uuid of snapshot.states.keys()) assert.equal(uuid, uuid.toLowerCase(), `${uuid} is not lower-case`);
    for (const domain of domains) {
      assert.equal(snapshot.states.get(domain.uuid.toLowerCase()), domain.state, `runstate ${domain.state} of ${domain.uuid}`);
    }
  });

  test('readDomain reads one domain by name, lower-case, and null for a name libvirt does not know', async () => {
    const reader = openReader(await hosts.write(`single-${suffix}`, domains));
    for (const domain of domains) {
      assert.deepEqual(await reader.readDomain(`instance-${domain.uuid}`), { uuid: domain.uuid.toLowerCase(), state: domain.state });
    }
    assert.equal(await reader.readDomain(`instance-${randomUUID()}`), null);
  });

  test('an empty host reads as zero domains', async () => {
    const reader = openReader(await hosts.write(`empty-${suffix}`, []));
    const snapshot = await reader.read();
    assert.equal(snapshot.domainCount, 0);
    assert.equal(snapshot.states.size, 0);
    assert.equal(snapshot.unreadable.size, 0);
  });

  test('a missing node file is a retryable hypervisor DependencyError; once the file exists the reader reads it', async () => {
    const host = `late-${suffix}`;
    const uri = hosts.uriTemplate.replaceAll('{host}', host);
    const reader = openReader(uri);

    for (const attempt of [1, 2]) {
      await assert.rejects(reader.read(), (err: unknown) => {
        assert.ok(err instanceof DependencyError, `attempt ${attempt}: ${String(err)}`);
        assert.equal(err.code, 'VS_HYPERVISOR_UNAVAILABLE');
        assert.equal(err.dependency, 'hypervisor');
        assert.equal(err.retryable, true);
        assert.ok(err.message.includes(uri), `the message names the URI: ${err.message}`);
        assert.ok(err.cause instanceof Error, 'the libvirt error is kept as the cause');
        return true;
      });
    }
    await assert.rejects(reader.readDomain('instance-anything'), (err: unknown) => err instanceof DependencyError && err.code === 'VS_HYPERVISOR_UNAVAILABLE');

    const [first, second] = domains;
    assert.ok(first !== undefined && second !== undefined);
    assert.equal(await hosts.write(host, [first, second]), uri);
    const snapshot = await reader.read();
    assert.equal(snapshot.domainCount, 2);
    assert.deepEqual(
      [...snapshot.states].sort(([a], [b]) => a.localeCompare(b)),
      [first, second].map((d) => [d.uuid.toLowerCase(), d.state] as const).sort(([a], [b]) => a.localeCompare(b)),
    );
  });

  test('close() is safe twice, before and after use, and a closed reader reconnects on the next read', async () => {
    const unused = openReader(await hosts.write(`unused-${suffix}`, domains));
    await unused.close();
    await unused.close();

    const reader = openReader(await hosts.write(`closed-${suffix}`, domains));
    assert.equal((await reader.read()).domainCount, domains.length);
    await reader.close();
    await reader.close();
    assert.equal((await reader.read()).domainCount, domains.length);
  });
});

describe('createLibvirtReader while domains change state under it (shared libvirtd)', () => {
  test('every flipping domain is read once, RUNNING or PAUSED, never missing; the lists are checked and fall back', async () => {
    await ensureLibvirtd();
    const daemon = await openDaemonDomains();
    const fallbacks: string[] = [];
    const debugLog = createLogger({
      service: 'test',
      level: 'debug',
      destination: new Writable({
        write(line: Buffer, _encoding, done) {
          if (line.toString().includes('changed state while listed')) fallbacks.push(line.toString());
          done();
        },
      }),
    });
    const reader = createLibvirtReader({ uri: LIBVIRTD_URI, concurrency: 4, log: debugLog });
    let flipping = true;
    try {
      const uuids = await Promise.all(Array.from({ length: 12 }, (_, i) => daemon.start(`reader-flip-${suffix}-${i}`)));
      const handles = await Promise.all(uuids.map((uuid) => daemon.hypervisor.domainLookupByUUIDString(uuid)));
      // Another client pausing and resuming every domain, as fast as libvirtd lets it.
      const flipper = (async () => {
        while (flipping) {
          for (const handle of handles) await daemon.hypervisor.domainSuspend(handle);
          for (const handle of handles) await daemon.hypervisor.domainResume(handle);
        }
      })();

      for (let read = 0; read < 40; read++) {
        const snapshot = await reader.read();
        for (const uuid of uuids) {
          const state = snapshot.states.get(uuid);
          assert.ok(state === PowerState.RUNNING || state === PowerState.PAUSED, `read ${read}: ${uuid} read as ${String(state)}`);
        }
        assert.equal(snapshot.states.size + snapshot.unreadable.size, snapshot.domainCount, `read ${read}: every listed domain once`);
      }
      flipping = false;
      await flipper;
      assert.ok(fallbacks.length > 0, 'some reads raced the flipper and were read one by one');
    } finally {
      flipping = false;
      await reader.close();
      await daemon.removeAll();
      await daemon.close();
    }
  });
});
