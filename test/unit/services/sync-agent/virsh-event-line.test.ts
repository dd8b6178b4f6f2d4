import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseVirshEventLine } from '../../../../services/sync-agent/virsh-event-line.ts';

describe('parseVirshEventLine', () => {
  const cases = [
    {
      line: "2026-11-24 20:23:38.280+0000: event 'lifecycle' for domain 'test': Suspended Paused",
      expected: { at: new Date('2026-11-24T20:23:38.280Z'), domainName: 'test', event: 'Suspended', detail: 'Paused' },
    },
    {
      // A name containing the separator itself: the last "': " is the one that counts.
      line: "2026-11-24 21:00:00.001+0100: event 'lifecycle' for domain 'odd': name': Stopped Destroyed",
      expected: { at: new Date('2026-11-24T20:00:00.001Z'), domainName: "odd': name", event: 'Stopped', detail: 'Destroyed' },
    },
    {
      line: "2026-11-24 20:23:38.280+0000: event 'lifecycle' for domain 'instance-00000001': Started Booted",
      expected: { at: new Date('2026-11-24T20:23:38.280Z'), domainName: 'instance-00000001', event: 'Started', detail: 'Booted' },
    },
  ];
  for (const { line, expected } of cases) {
    test(`parses ${expected.event} ${expected.detail} of ${expected.domainName}`, () => {
      assert.deepEqual(parseVirshEventLine(line), expected);
    });
  }

  // Every lifecycle event and detail virsh prints (tools/virsh-domain-event.c, libvirt 9.0 to 10.x):
  // each must come through whole, whatever the number of words.
  const LIBVIRT_LIFECYCLE_DETAILS: Record<string, readonly string[]> = {
    Defined: ['Added', 'Updated', 'Renamed', 'Snapshot'],
    Undefined: ['Removed', 'Renamed'],
    Started: ['Booted', 'Migrated', 'Restored', 'Snapshot', 'Event wakeup', 'Recreation'],
    Suspended: ['Paused', 'Migrated', 'I/O Error', 'Watchdog', 'Restored', 'Snapshot', 'API error', 'Post-copy', 'Post-copy Error'],
    Resumed: ['Unpaused', 'Migrated', 'Snapshot', 'Post-copy', 'Post-copy Error'],
    Stopped: ['Shutdown', 'Destroyed', 'Crashed', 'Migrated', 'Saved', 'Failed', 'Snapshot', 'Recreation'],
    Shutdown: ['Finished', 'Finished after guest request', 'Finished after host request'],
    PMSuspended: ['Memory', 'Disk'],
    Crashed: ['Panicked', 'Crashloaded'],
    // What virsh prints for an event or detail newer than itself.
    unknown: ['unknown'],
  };
  for (const [event, details] of Object.entries(LIBVIRT_LIFECYCLE_DETAILS)) {
    for (const detail of details) {
      test(`parses libvirt's ${event} ${detail}`, () => {
        const line = `2026-11-30 04:11:06.375+0000: event 'lifecycle' for domain 'vm-a': ${event} ${detail}`;
        assert.deepEqual(parseVirshEventLine(line), { at: new Date('2026-11-30T04:11:06.375Z'), domainName: 'vm-a', event, detail });
      });
    }
  }

  test('a multi-word detail after a name holding the separator', () => {
    const parsed = parseVirshEventLine("2026-11-30 04:11:06.375+0000: event 'lifecycle' for domain 'odd': Started': Suspended I/O Error");
    assert.deepEqual(parsed && { domainName: parsed.domainName, event: parsed.event, detail: parsed.detail }, {
      domainName: "odd': Started",
      event: 'Suspended',
      detail: 'I/O Error',
    });
  });

  for (const line of [
    '',
    'events received: 4',
    "2026-11-24 20:23:38.280+0000: event 'reboot' for domain 'test'",
    "2026-11-30 04:11:06.374+0000: event 'io-error' for domain 'gio':  () pause",
    "2026-11-24 20:23:38.280+0000: event 'lifecycle' for domain 'test'",
    "garbage event 'lifecycle' for domain 'test': Started Booted",
    "2026-13-45 99:99:99.999+0000: event 'lifecycle' for domain 'test': Started Booted",
  ]) {
    test(`ignores ${JSON.stringify(line)}`, () => {
      assert.equal(parseVirshEventLine(line), null);
    });
  }
});
