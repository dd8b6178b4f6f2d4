import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { deadLetterOrigin, replayDecision } from '../../../../shared/bus/dead-letter-origin.ts';
import { Exchange, Queue } from '../../../../shared/bus/topology.ts';
import { changeEventFor } from '../../../../tools/fixtures/change-events.ts';

const valid = Buffer.from(JSON.stringify(changeEventFor('h1')));
const virtsync = { 'x-virtsync-reason': 'write failed: x', 'x-virtsync-queue': Queue.auditSubscriber, 'x-virtsync-routing-key': 'instance.h1.shutoff' };
const brokerDeath = (queue: string, reason: string, exchange: string = Exchange.changes) => ({
  'x-death': [{ count: 1, reason, queue, exchange, 'routing-keys': [Buffer.from('instance.h1.shutoff')] }],
});

describe('deadLetterOrigin and replayDecision', () => {
  const cases = [
    { name: 'virtsync, before the exchange header existed: the queue names the exchange', headers: virtsync, by: 'virtsync', replay: { exchange: Exchange.changes, routingKey: 'instance.h1.shutoff' } },
    { name: 'virtsync, sent straight to the queue (default exchange)', headers: { ...virtsync, 'x-virtsync-exchange': '' }, by: 'virtsync', replay: { exchange: '', routingKey: Queue.auditSubscriber } },
    { name: 'the broker, delivery limit (routing keys as bytes)', headers: brokerDeath(Queue.auditSubscriber, 'delivery_limit'), by: 'broker', replay: { exchange: Exchange.changes, routingKey: 'instance.h1.shutoff' } },
    { name: 'the broker, an overflowed host report', headers: brokerDeath(Queue.hostReports, 'maxlen', Exchange.reports), by: 'broker', why: /overflowed host report/ },
    { name: 'the broker, from a queue that is not virtsync\'s', headers: brokerDeath('someone.elses', 'rejected'), by: 'broker', why: /not from a virtsync queue/ },
    { name: 'virtsync headers naming another exchange than the queue takes', headers: { ...virtsync, 'x-virtsync-exchange': Exchange.observations }, by: 'virtsync', why: /takes virtsync.changes/ },
    { name: 'no headers: put there by hand', headers: undefined, by: 'unknown', why: /not dead-lettered by the broker or virtsync/ },
    { name: 'a reason without its origin: not virtsync\'s stamp', headers: { 'x-virtsync-reason': 'x' }, by: 'unknown', why: /not dead-lettered/ },
  ] as const;
  for (const { name, headers, by, ...expected } of cases) {
    test(name, () => {
      const origin = deadLetterOrigin(headers);
      assert.equal(origin.by, by);
      const decision = replayDecision(origin, valid);
      if ('replay' in expected) assert.deepEqual(decision, { replay: true, ...expected.replay });
      else assert.match(decision.replay ? '' : decision.why, expected.why);
    });
  }

  test('a message still failing its contract is not replayed', () => {
    const decision = replayDecision(deadLetterOrigin(virtsync), Buffer.from('{"schemaVersion":1}'));
    assert.equal(decision.replay, false);
    assert.match(decision.replay ? '' : decision.why, /^still invalid: /);
  });
});
