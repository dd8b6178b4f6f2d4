/**
 * Fault: every message delivered twice. A tap queue bound to the observations exchange
 * sends each observations message a second time straight to the writer's queue, and one bound to
 * the changes exchange sends each change event a second time to the audit subscriber's
 * queue, while a real cycle runs. Expected: no extra change, no extra audit row.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { ConsumeMessage } from 'amqplib';
import { Exchange, Queue } from '../../shared/bus/topology.ts';
import { parseMessage } from '../../shared/messages/codec.ts';
import { hostObservationsSchema } from '../../shared/messages/observation.ts';
import { waitFor } from '../../tools/wait-for.ts';
import { type FaultOutcome, type FaultRig, createFaultRig } from './harness/fault-rig.ts';
import { printFaultSummary } from './harness/fault-report.ts';
import { defineInvariantTests } from './harness/invariant-tests.ts';

let rig: FaultRig;
let outcome: FaultOutcome;
const duplicated = { observations: 0, changes: 0 };

/** How many observations one copied message carries (the agents publish them a host at a time). */
function observationsIn(content: Buffer): number {
  const parsed = parseMessage(hostObservationsSchema, content);
  return parsed.ok ? parsed.value.observations.length : 0;
}

before(
  async () => {
    rig = await createFaultRig({ fault: 'duplicate-delivery' });
    const { channel } = rig.probe;
    const tap = async (exchange: string, pattern: string, target: string, counted: keyof typeof duplicated): Promise<void> => {
      const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true });
      await channel.bindQueue(queue, exchange, pattern);
      await channel.consume(queue, (message: ConsumeMessage | null) => {
        if (message === null) return;
        const { messageId, type, contentType, headers } = message.properties;
        channel.sendToQueue(target, message.content, { persistent: true, messageId, type, contentType, headers });
        // Counted as what the writer and audit subscriber decide on: observations, change events.
        const copies = counted === 'observations' ? observationsIn(message.content) : 1;
        duplicated[counted] += copies;
        if (counted === 'observations') rig.injected.duplicates += copies;
        else rig.injected.other++;
        channel.ack(message);
      });
    };
    await tap(Exchange.observations, 'observation.#', Queue.stateWriter, 'observations');
    await tap(Exchange.changes, 'instance.#', Queue.auditSubscriber, 'changes');

    rig.startAuditSubscriber();
    rig.startWriter();
    rig.agentHosts.forEach((_, index) => rig.startAgent(index));
    rig.startTickProducer({ intervalMs: 1_000, cycles: 1 });
    const settled = await rig.settle(60_000);
    const committed = await rig.count('change_outbox');
    const auditEvents = (): number => rig.processes.filter((p) => p.service === 'audit-subscriber').reduce((n, p) => n + p.stats.auditEvents, 0);
    await waitFor('the duplicated change events to be written too', () => duplicated.changes >= committed && auditEvents() >= committed + duplicated.changes, {
      timeoutMs: 15_000,
    }).catch(() => undefined);
    outcome = await rig.finish(settled);
    printFaultSummary('every observation and every change event delivered twice', outcome, [
      `observations duplicated into ${Queue.stateWriter}: ${duplicated.observations}; change events duplicated into ${Queue.auditSubscriber}: ${duplicated.changes}`,
    ]);
  },
  { timeout: 120_000 },
);

after(async () => {
  await rig?.dispose(outcome === undefined || outcome.invariants.violations.length > 0);
});

defineInvariantTests(() => outcome);

test('each observation reached the writer twice and the second copy changed nothing', () => {
  const published = rig.observationsPublished();
  assert.ok(published > 0);
  assert.equal(duplicated.observations, rig.recorder.observations.length);
  assert.equal(outcome.stats.writers.observations, published + duplicated.observations);
  assert.equal(outcome.stats.writers.changes, outcome.figures.committed, 'every change the writers made is one outbox row');
  assert.ok(outcome.figures.duplicates >= duplicated.observations + duplicated.changes);
});

test('each change event reached the audit subscriber twice and it kept one row', () => {
  assert.ok(duplicated.changes >= outcome.figures.committed);
  assert.equal(outcome.stats.audit.auditDuplicates, duplicated.changes);
  assert.equal(outcome.stats.audit.auditRecorded, outcome.figures.committed);
});
