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

  for (const line of [
    '',
    'events received: 4',
    "2026-11-24 20:23:38.280+0000: event 'reboot' for domain 'test'",
    "2026-11-24 20:23:38.280+0000: event 'lifecycle' for domain 'test'",
    "garbage event 'lifecycle' for domain 'test': Started Booted",
    "2026-13-45 99:99:99.999+0000: event 'lifecycle' for domain 'test': Started Booted",
  ]) {
    test(`ignores ${JSON.stringify(line)}`, () => {
      assert.equal(parseVirshEventLine(line), null);
    });
  }
});
