/**
 * Fault: a stream of malformed messages mixed into real traffic. While a real cycle
 * runs, fast-check generates 150 malformed observations (published to the observations
 * exchange as the host reports come in), 40 malformed change events (to the changes
 * exchange) and 20 malformed ticks (to the tick queue of a host one agent serves, one at
 * a time: a tick queue keeps only its newest message by design). Expected: every real
 * change committed, every malformed message in virtsync.dead-letter exactly once with
 * its reason in x-virtsync-reason, no service crashed.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { ConsumeMessage } from 'amqplib';
import { Exchange, Queue, REASON_HEADER, tickQueue } from '../../shared/bus/topology.ts';
import { changeEventSchema } from '../../shared/messages/change-event.ts';
import { hostObservationsSchema } from '../../shared/messages/observation.ts';
import { tickSchema } from '../../shared/messages/tick.ts';
import { waitFor } from '../../tools/wait-for.ts';
import { type FaultOutcome, type FaultRig, createFaultRig } from './harness/fault-rig.ts';
import { printFaultSummary } from './harness/fault-report.ts';
import { defineInvariantTests } from './harness/invariant-tests.ts';
import { type MalformedMessage, malformedMessages, templates } from './harness/malformed-messages.ts';

const POISON_HOST = 'fuzz-poison';
const SEED = Number(process.env.FAULT_SEED ?? Date.now() % 2_147_483_647);

let rig: FaultRig;
let outcome: FaultOutcome;
/** messageId → where it was sent and what was wrong with it. */
const sent = new Map<string, { queue: string; kind: string }>();
let deadLetters: ConsumeMessage[] = [];

function publish(prefix: string, exchange: string, routingKey: string, queue: string, message: MalformedMessage): void {
  const messageId = `${prefix}-${sent.size + 1}`;
  rig.probe.channel.publish(exchange, routingKey, message.body, { persistent: true, messageId, type: 'fuzz' });
  sent.set(messageId, { queue, kind: message.kind });
  rig.injected.malformed++;
}

/** A reason may quote the bytes it choked on: keep the summary printable. */
const printable = (text: string): string => text.replace(/[^\x20-\x7e]/g, '?');

const agentDeadLetters = (): number => rig.processes.filter((p) => p.service === 'sync-agent').reduce((n, p) => n + p.stats.deadLettered, 0);

before(
  async () => {
    rig = await createFaultRig({ fault: 'malformed-stream', extraAgentHosts: [POISON_HOST] });
    const realHost = rig.plan.hosts[0] as string;
    const observations = malformedMessages({ template: templates.hostObservations(realHost), schema: hostObservationsSchema, count: 150, seed: SEED });
    const changes = malformedMessages({ template: templates.changeEvent(realHost), schema: changeEventSchema, count: 40, seed: SEED + 1 });
    const ticks = malformedMessages({ template: templates.tick(POISON_HOST), schema: tickSchema, count: 18, seed: SEED + 2 });
    // Well-formed, but for another host than the queue it arrives on.
    ticks.push({ kind: 'tick for another host', body: Buffer.from(JSON.stringify(templates.tick(realHost))) });
    ticks.push({ kind: 'tick for another host', body: Buffer.from(JSON.stringify(templates.tick('not-served-here'))) });

    rig.startAuditSubscriber();
    rig.startWriter();
    rig.agentHosts.forEach((_, index) => rig.startAgent(index));
    rig.startTickProducer({ intervalMs: 1_000, cycles: 2 });

    // Mixed into the cycle: a slice of the stream each time another host reports.
    const slices = rig.plan.hosts.length;
    for (let slice = 0; slice < slices; slice++) {
      await waitFor(`host report ${slice + 1}`, () => rig.recorder.reports.length > slice, { timeoutMs: 60_000 });
      const take = <T>(list: readonly T[]): T[] => list.slice(Math.floor((slice * list.length) / slices), Math.floor(((slice + 1) * list.length) / slices));
      for (const message of take(observations)) publish('fuzz-observation', Exchange.observations, 'observation.fuzz.bad', Queue.stateWriter, message);
      for (const message of take(changes)) publish('fuzz-change', Exchange.changes, 'instance.fuzz.bad', Queue.auditSubscriber, message);
    }
    for (const message of ticks) {
      const before = agentDeadLetters();
      publish('fuzz-tick', Exchange.ticks, POISON_HOST, tickQueue(POISON_HOST), message);
      await waitFor('the malformed tick rejected', () => agentDeadLetters() > before, { timeoutMs: 10_000 });
    }

    const settled = await rig.settle(60_000);
    await waitFor('every malformed message dead-lettered', async () => (await rig.probe.messageCount(Queue.deadLetter)) >= sent.size, { timeoutMs: 15_000 }).catch(
      () => undefined,
    );
    outcome = await rig.finish(settled);
    deadLetters = await rig.takeMessages(Queue.deadLetter, outcome.figures.deadlettered, 15_000);
    const kinds = new Map<string, number>();
    for (const { kind } of sent.values()) {
      const group = kind.replace(/^missing .*/, 'a field missing').replace(/.* of the wrong type$/, 'a field of the wrong type').replace(/^bad (instance uuid|observedAt|scheduledAt|committedAt)$/, 'bad uuid or timestamp');
      kinds.set(group, (kinds.get(group) ?? 0) + 1);
    }
    printFaultSummary(`${sent.size} malformed messages mixed into a real cycle (fast-check seed ${SEED})`, outcome, [
      `malformed: ${observations.length} observations, ${changes.length} change events, ${ticks.length} ticks, ${[...sent.values()].filter((m) => m.kind === 'oversized').length} of them over 64 KiB`,
      `kinds: ${[...kinds].map(([kind, n]) => `${kind} ${n}`).join(', ')}`,
      `dead-letter queue: ${deadLetters.length} messages, reasons e.g. ${[...new Set(deadLetters.map((m) => printable(String(m.properties.headers?.[REASON_HEADER]).slice(0, 60))))].slice(0, 4).join(' | ')}`,
    ]);
  },
  { timeout: 150_000 },
);

after(async () => {
  await rig?.dispose(outcome === undefined || outcome.invariants.violations.length > 0);
});

defineInvariantTests(() => outcome);

test('at least 200 malformed messages were mixed into real traffic', () => {
  assert.ok(sent.size >= 200, `${sent.size} sent`);
  assert.ok(rig.observationsPublished() > 0);
  assert.equal(outcome.figures.committed, outcome.fleet.changesExpected);
});

test('every malformed message is in the dead-letter queue exactly once, with its reason and origin', () => {
  const byId = new Map<string, number>();
  for (const message of deadLetters) byId.set(String(message.properties.messageId), (byId.get(String(message.properties.messageId)) ?? 0) + 1);
  assert.deepEqual([...sent.keys()].filter((id) => byId.get(id) !== 1), [], 'malformed messages not dead-lettered exactly once');
  assert.deepEqual([...byId.keys()].filter((id) => !sent.has(id)), [], 'dead letters that were not injected: a real message was rejected');
  for (const message of deadLetters) {
    const origin = sent.get(String(message.properties.messageId));
    const headers = message.properties.headers ?? {};
    const reason = headers[REASON_HEADER];
    assert.ok(typeof reason === 'string' && reason.length > 0, `no reason on ${message.properties.messageId}`);
    assert.equal(headers['x-virtsync-queue'], origin?.queue, `origin queue of ${message.properties.messageId}`);
  }
  assert.equal(outcome.figures.deadlettered, sent.size);
});
