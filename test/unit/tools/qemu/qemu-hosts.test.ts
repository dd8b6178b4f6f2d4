import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PowerState } from '../../../../shared/power-state.ts';
import { guestXml } from '../../../../tools/qemu/guest-xml.ts';
import { listDomains } from '../../../../tools/qemu/qemu-hosts.ts';

test('listDomains joins virsh list --uuid --name with domstats --state by name', () => {
  const listing = ' 33B8DDCE-75cd-4182-90e7-84df2801dd38 vm-a\n 0f0e0d0c-0000-4000-8000-000000000001 vm-b\n 0f0e0d0c-0000-4000-8000-000000000002 gone\n\n';
  const stats = "Domain: 'vm-a'\n  state.state=1\n  state.reason=1\n\nDomain: 'vm-b'\n  state.state=5\n  state.reason=2\n";
  assert.deepEqual(listDomains('qemu-h1', listing, stats), [
    { host: 'qemu-h1', uuid: '33b8ddce-75cd-4182-90e7-84df2801dd38', name: 'vm-a', state: PowerState.RUNNING },
    { host: 'qemu-h1', uuid: '0f0e0d0c-0000-4000-8000-000000000001', name: 'vm-b', state: PowerState.SHUTOFF },
  ]);
});

test('guestXml: a TCG guest, optionally with a disk whose third read fails', () => {
  const plain = guestXml({ name: 'g-1', uuid: '0f0e0d0c-0000-4000-8000-000000000001' });
  assert.match(plain, /<domain type='qemu'/);
  assert.match(plain, /<memory unit='MiB'>32<\/memory>/);
  assert.doesNotMatch(plain, /blkdebug/);
  assert.match(guestXml({ name: 'g-2', uuid: '0f0e0d0c-0000-4000-8000-000000000002', failingDisk: true }), /"inject-error":\[\{"event":"read_aio","state":3/);
  assert.throws(() => guestXml({ name: "bad'name", uuid: '0f0e0d0c-0000-4000-8000-000000000003' }));
});
