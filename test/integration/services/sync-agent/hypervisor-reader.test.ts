/**
 * The libvirt reader (virtsync's addon) against real libvirt test:/// hosts: every
 * virDomainState the test driver can hold is read as that PowerState, with libvirt's
 * reason, by the bulk call and by the listing fallback, shut-off domains are counted, UUIDs
 * come back lower-case, a host that cannot be opened is a retryable hypervisor
 * DependencyError, and the reader reconnects on its own once the host is there. Against a
 * libvirtd of the test's own: a domain that vanished is gone from the next read, a daemon
 * killed and restarted between two reads costs a reconnect, not a failed read, and a read
 * while the daemon is away waits for it (reconnectWaitMs) and fails only if it is still
 * away after the wait.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { createLibvirtReader, type HypervisorReader } from '../../../../services/sync-agent/hypervisor-reader.ts';
import { DependencyError } from '../../../../shared/errors.ts';
import { PowerState } from '../../../../shared/power-state.ts';
import type { SimulatedDomain } from '../../../../tools/fleet/node-xml.ts';
import { createLibvirtHosts, type LibvirtHosts } from '../../../helpers/libvirt-host.ts';
import { startPrivateLibvirtd } from '../../../../tools/local-env/private-libvirtd.ts';
import { Hypervisor } from '@unraid/libvirt';
import { captureLogger } from '../../../helpers/test-logger.ts';
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

/** libvirt's VIR_DOMAIN_RUNNING_BOOTED: the reason of a domain just started. */
const RUNNING_BOOTED = 1;

const suffix = randomBytes(3).toString('hex');
let hosts: LibvirtHosts;
const readers: HypervisorReader[] = [];

function openReader(uri: string, options: { byListing?: boolean; log?: typeof testLogger; reconnectWaitMs?: number } = {}): HypervisorReader {
  const reader = createLibvirtReader({ uri, reconnectWaitMs: options.reconnectWaitMs ?? 0, log: options.log ?? testLogger, byListing: options.byListing });
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

  for (const byListing of [false, true]) {
    test(`reads every runstate 0..7 as that PowerState, counts every domain, lower-cases UUIDs (${byListing ? 'listing fallback' : 'bulk call'})`, async () => {
      const reader = openReader(await hosts.write(`states-${byListing}-${suffix}`, domains), { byListing });
      const snapshot = await reader.read();

      assert.equal(snapshot.domainCount, domains.length, 'shut-off domains are listed too');
      assert.equal(snapshot.unreadable.size, 0);
      assert.equal(snapshot.states.size, domains.length);
      assert.deepEqual([...snapshot.reasons.keys()].sort(), [...snapshot.states.keys()].sort(), 'a reason for every state read');
      for (const uuid of snapshot.states.keys()) assert.equal(uuid, uuid.toLowerCase(), `${uuid} is not lower-case`);
      for (const domain of domains) {
        const uuid = domain.uuid.toLowerCase();
        assert.equal(snapshot.states.get(uuid), domain.state, `runstate ${domain.state} of ${domain.uuid}`);
        assert.equal(snapshot.uuidOfName(`instance-${domain.uuid}`), uuid, 'names lead to UUIDs');
      }
    });
  }

  test('readDomain reads one domain by name, lower-case, with the reason the bulk read gives, and null for a name libvirt does not know', async () => {
    const reader = openReader(await hosts.write(`single-${suffix}`, domains));
    const { reasons } = await reader.read();
    for (const domain of domains) {
      const uuid = domain.uuid.toLowerCase();
      assert.deepEqual(await reader.readDomain(`instance-${domain.uuid}`), { uuid, state: domain.state, reason: reasons.get(uuid) });
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

describe('createLibvirtReader against a libvirtd of its own', () => {
  test('a vanished domain is gone from the next read; a daemon killed and restarted between reads costs no failed read', async () => {
    const daemon = await startPrivateLibvirtd();
    const logs = captureLogger();
    const reader = openReader(daemon.uri, { log: logs.logger });
    const writer = new Hypervisor({ uri: daemon.uri });
    try {
      await writer.connectOpen();
      const uuid = randomUUID();
      const name = `reader-vanish-${suffix}`;
      // Transient: destroying it makes libvirt forget it.
      const domain = await writer.domainCreateXML(
        `<domain type="test"><name>${name}</name><uuid>${uuid}</uuid><memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>`,
      );
      const started = await reader.read();
      assert.equal(started.states.get(uuid), PowerState.RUNNING);
      assert.equal(started.reasons.get(uuid), RUNNING_BOOTED, 'running (booted)');
      assert.deepEqual(await reader.readDomain(name), { uuid, state: PowerState.RUNNING, reason: RUNNING_BOOTED });
      await writer.domainDestroy(domain);
      assert.equal((await reader.read()).states.has(uuid), false, 'a vanished domain is not read');
      assert.equal(await reader.readDomain(name), null, 'nor found by name');
      await writer.connectClose().catch(() => undefined);

      await daemon.kill();
      await daemon.start();
      const afterRestart = await reader.read();
      assert.ok(afterRestart.domainCount >= 1, 'the default test host has its domain');
      assert.ok(logs.lines().some((line) => line.includes('hypervisor connection was dead, reconnecting')), 'the dead connection was replaced');
      await daemon.kill();
      await daemon.start();
      assert.ok((await reader.readDomain('test')) !== null, 'a lookup by name reconnects too');

      await daemon.kill();
      await assert.rejects(reader.read(), (err: unknown) => err instanceof DependencyError && err.code === 'VS_HYPERVISOR_UNAVAILABLE');
      await daemon.start();
      assert.ok((await reader.read()).domainCount >= 1, 'reads again once the daemon is back');
    } finally {
      await writer.connectClose().catch(() => undefined);
      await reader.close();
      await daemon.remove();
    }
  });

  test('a read while the daemon is away waits for it; a daemon still away after the wait fails the read', async () => {
    const daemon = await startPrivateLibvirtd();
    const logs = captureLogger();
    const reader = openReader(daemon.uri, { log: logs.logger, reconnectWaitMs: 20_000 });
    const impatient = openReader(daemon.uri, { reconnectWaitMs: 500 });
    try {
      assert.ok((await reader.read()).domainCount >= 1);
      await daemon.kill();
      // Both reads find the daemon away; only the patient one outlasts the restart.
      const waiting = reader.read();
      const stillAway = impatient.read().then(
        () => assert.fail('a read succeeded with the daemon away'),
        (err: unknown) => err,
      );
      const failure = await stillAway;
      assert.ok(failure instanceof DependencyError && failure.code === 'VS_HYPERVISOR_UNAVAILABLE', String(failure));
      assert.match(failure.message, /still away after \d+ ms/);
      await daemon.start();
      assert.ok((await waiting).domainCount >= 1, 'the waiting read read the daemon once it was back');
      const back = logs.lines().filter((line) => line.includes('hypervisor connected once its daemon was back'));
      assert.equal(back.length, 1, 'one line says the daemon came back');
      assert.match(back[0] ?? '', /"waitedMs":\d+/);
    } finally {
      await reader.close();
      await daemon.remove();
    }
  });
});
