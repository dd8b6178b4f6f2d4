/**
 * virtsync's libvirt addon on its own: the bulk call and the listing fallback agree on
 * every runstate 0..7 (with reasons), libvirt's errors come back with libvirt's message and
 * code (a daemon with nothing listening on its socket told apart), and no handle's lifetime can crash the process: a connection closed or garbage-
 * collected while reads are in flight, and many concurrent reads while another client
 * starts, stops, creates and destroys domains on a libvirtd of the test's own.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { after, before, describe, test } from 'node:test';
import { Hypervisor } from '@unraid/libvirt';
import { type HostDomains, isDaemonAway, LibvirtErrorCode, libvirtErrorCode, openReadOnly } from '../../../native/libvirt-bulk/index.ts';
import { PowerState } from '../../../shared/power-state.ts';
import { createLibvirtHosts, type LibvirtHosts } from '../../helpers/libvirt-host.ts';
import { startPrivateLibvirtd } from '../../../tools/local-env/private-libvirtd.ts';

const suffix = randomBytes(3).toString('hex');
let hosts: LibvirtHosts;

before(async () => {
  hosts = await createLibvirtHosts();
});
after(async () => {
  await hosts?.remove();
});

/** One line per domain, sorted: the columns compared as a set. */
function rowsOf(domains: HostDomains): string[] {
  return domains.uuids.map((uuid, i) => `${uuid} ${domains.names[i]} ${domains.states[i]} ${domains.reasons[i]}`).sort();
}

const domainXml = (name: string, uuid: string): string =>
  `<domain type="test"><name>${name}</name><uuid>${uuid}</uuid><memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>`;

describe('libvirt-bulk addon', () => {
  test('the bulk call and the listing read the same domains, states 0..7, names and reasons', async () => {
    const domains = Object.values(PowerState)
      .filter((state) => state <= 7)
      .map((state) => ({ uuid: randomUUID(), state }));
    const connection = await openReadOnly(await hosts.write(`addon-states-${suffix}`, domains));
    try {
      const bulk = await connection.readAll();
      const listed = await connection.readAll({ byListing: true });
      assert.deepEqual(rowsOf(bulk), rowsOf(listed));
      assert.deepEqual(
        [...bulk.states].sort(),
        domains.map((d) => d.state).sort(),
      );
      for (const domain of domains) {
        const i = bulk.uuids.indexOf(domain.uuid);
        assert.equal(bulk.names[i], `instance-${domain.uuid}`);
        assert.equal(bulk.states[i], domain.state);
        assert.deepEqual(await connection.readByName(`instance-${domain.uuid}`), {
          uuid: domain.uuid,
          name: `instance-${domain.uuid}`,
          state: domain.state,
          reason: bulk.reasons[i],
        });
      }
      assert.equal(await connection.readByName('no-such-domain'), null);
      assert.equal(connection.isAlive(), true);
    } finally {
      await connection.close();
    }
  });

  test("libvirt's errors keep libvirt's message and code; a closed connection refuses reads", async () => {
    await assert.rejects(openReadOnly('test:///no/such/node.xml'), (err: unknown) => {
      assert.ok(err instanceof Error);
      assert.match(err.message, /no\/such\/node\.xml/);
      assert.equal(typeof libvirtErrorCode(err), 'number');
      return true;
    });
    await assert.rejects(openReadOnly('nosuchdriver:///'), (err: unknown) => err instanceof Error && libvirtErrorCode(err) !== undefined);
    const connection = await openReadOnly(await hosts.write(`addon-closed-${suffix}`, []));
    assert.deepEqual(rowsOf(await connection.readAll()), []);
    await connection.close();
    await connection.close();
    assert.equal(connection.isAlive(), false);
    await assert.rejects(connection.readAll(), /connection is closed/);
    await assert.rejects(connection.readByName('x'), /connection is closed/);
    assert.equal(libvirtErrorCode(new Error('plain')), undefined);
    assert.equal(LibvirtErrorCode.NO_DOMAIN, 42);
  });

  test('a daemon with nothing listening on its socket (absent, or refusing) is told apart from other failures', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'virtsync-addon-socket-'));
    try {
      // A socket file nobody accepts on any more, as a daemon killed before it could clean up leaves.
      const kept = path.join(dir, 'kept-sock');
      const listener = spawn(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(kept)}, () => console.log('up'))`]);
      await once(listener.stdout, 'data');
      listener.kill('SIGKILL');
      await once(listener, 'exit');
      for (const [socket, errno] of [[path.join(dir, 'absent-sock'), 'No such file or directory'], [kept, 'Connection refused']] as const) {
        await assert.rejects(openReadOnly(`test+unix:///default?socket=${socket}`), (err: unknown) => {
          assert.ok(err instanceof Error);
          assert.match(err.message, new RegExp(`Failed to connect socket.*${errno}`));
          assert.equal(isDaemonAway(err), true, err.message);
          return true;
        });
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    await assert.rejects(openReadOnly('test:///no/such/node.xml'), (err: unknown) => !isDaemonAway(err));
    assert.equal(isDaemonAway(new Error('plain')), false);
  });

  test('a connection closed, or dropped and garbage-collected, while reads are in flight: the reads finish', async () => {
    const domains = Array.from({ length: 200 }, () => ({ uuid: randomUUID(), state: PowerState.RUNNING }));
    const uri = await hosts.write(`addon-lifetime-${suffix}`, domains);
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    for (let round = 0; round < 8; round++) {
      let connection: Awaited<ReturnType<typeof openReadOnly>> | undefined = await openReadOnly(uri);
      const reads = Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? connection!.readAll() : connection!.readByName(`instance-${domains[i]?.uuid}`)));
      if (round % 2 === 0) void connection.close();
      connection = undefined;
      gc();
      const results = await Promise.all(reads);
      for (const [i, result] of results.entries()) {
        if (i % 2 === 0) assert.equal((result as HostDomains).uuids.length, domains.length);
        else assert.notEqual(result, null);
      }
    }
    gc();
  });
});

describe('libvirt-bulk addon under churn (a libvirtd of its own)', () => {
  test('concurrent reads while another client starts, stops, creates and destroys domains: no crash, every answer well-formed', async () => {
    const daemon = await startPrivateLibvirtd();
    const writer = new Hypervisor({ uri: daemon.uri });
    const readers = await Promise.all([openReadOnly(daemon.uri), openReadOnly(daemon.uri)]);
    let churning = true;
    try {
      await writer.connectOpen();
      const persistent: string[] = [];
      for (let i = 0; i < 30; i++) {
        const name = `churn-${suffix}-${i}`;
        await writer.domainCreate(await writer.domainDefineXML(domainXml(name, randomUUID())));
        persistent.push(name);
      }
      const transientNames = Array.from({ length: 10 }, (_, i) => `churn-${suffix}-t${i}`);
      const churn = (async () => {
        let flips = 0;
        while (churning) {
          for (const name of persistent) {
            const domain = await writer.domainLookupByName(name);
            if (flips % 2 === 0) await writer.domainDestroy(domain);
            else await writer.domainCreate(domain);
          }
          for (const name of transientNames) {
            if (flips % 2 === 0) await writer.domainCreateXML(domainXml(name, randomUUID()));
            else await writer.domainDestroy(await writer.domainLookupByName(name));
          }
          flips++;
        }
        return flips;
      })();

      const names = [...persistent, ...transientNames];
      let reads = 0;
      const deadline = Date.now() + 3_000;
      const readLoop = async (r: number): Promise<void> => {
        const connection = readers[r % readers.length]!;
        while (Date.now() < deadline) {
          const [all, listed, ...single] = await Promise.all([
            connection.readAll(),
            connection.readAll({ byListing: true }),
            ...names.map((name) => connection.readByName(name)),
          ]);
          for (const snapshot of [all, listed]) {
            snapshot.uuids.forEach((_, i) => {
              const name = snapshot.names[i] ?? '';
              if (!name.startsWith(`churn-${suffix}`)) return;
              assert.ok(snapshot.states[i] === PowerState.RUNNING || snapshot.states[i] === PowerState.SHUTOFF, `${name}: state ${snapshot.states[i]}`);
            });
          }
          for (const [i, record] of single.entries()) {
            if (record === null) assert.ok(transientNames.includes(names[i] ?? ''), `only transient domains vanish, not ${names[i]}`);
            else assert.equal(record.name, names[i]);
          }
          reads++;
        }
      };
      await Promise.all([0, 1, 2, 3].map(readLoop));
      churning = false;
      const flips = await churn;
      assert.ok(flips >= 1 && reads >= 4, `churned ${flips} times, read ${reads} rounds`);
    } finally {
      churning = false;
      await Promise.all(readers.map((reader) => reader.close()));
      await writer.connectClose().catch(() => undefined);
      await daemon.remove();
    }
  });
});
