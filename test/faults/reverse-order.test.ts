/**
 * Fault: observations delivered in reverse order. With no writer running, a real cycle's
 * observations queue up; the test drains them and, for every instance they would change,
 * adds an older observation of that instance (same host, an older look of the same agent or
 * of its previous process, the same read of the row, a different power state, in the agents'
 * own format, and stamped 5 s *later*: stamps order nothing): the order they would have
 * arrived in is every older one, then every real one. They are republished reversed (newest
 * first) and a writer started with small batches, so each older observation reaches it in a
 * later transaction than its newer one. Expected: the newer state wins, every older
 * observation is skipped as stale, no extra change, no regression.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { after, before, test } from 'node:test';
import { Queue } from '../../shared/bus/topology.ts';
import { parseMessage } from '../../shared/messages/codec.ts';
import { hostObservationsSchema, type Observation, observationsOf } from '../../shared/messages/observation.ts';
import { PowerState } from '../../shared/power-state.ts';
import type { LookOrder } from '../../shared/sync-rules.ts';
import { waitFor } from '../../tools/wait-for.ts';
import type { Scenario } from '../../tools/fleet/scenarios.ts';
import { type FaultOutcome, type FaultRig, createFaultRig } from './harness/fault-rig.ts';
import { printFaultSummary } from './harness/fault-report.ts';
import { isUpdateRule } from './harness/fleet-invariants.ts';
import { defineInvariantTests } from './harness/invariant-tests.ts';
import { publishObservations } from '../helpers/observations.ts';

/** A state the instance was in neither before nor after: applying it would be a visible change. */
function decoyState(real: PowerState | null, scenario: Scenario): PowerState {
  const candidates = [PowerState.PAUSED, PowerState.SUSPENDED, PowerState.CRASHED];
  return candidates.find((state) => state !== real && state !== scenario.row.powerState && state !== scenario.expected?.powerState) ?? PowerState.BLOCKED;
}

/** A look before `look`: the same agent's previous one, or (for its first) one of the agent process before it. */
function olderLook(look: LookOrder): LookOrder {
  return look.seq > 1 ? { epoch: look.epoch, seq: look.seq - 1 } : { epoch: look.epoch - 1, seq: look.seq + 1_000 };
}

function olderCopy(real: Observation, scenario: Scenario): Observation {
  assert.ok(real.look !== undefined && real.expected !== undefined, 'the agents send looks and the rows they read');
  return {
    ...real,
    observationId: randomUUID(),
    powerState: decoyState(real.powerState, scenario),
    look: olderLook(real.look),
    observedAt: new Date(Date.parse(real.observedAt) + 5_000).toISOString(),
    trigger: 'event',
    tickId: null,
  };
}

/** Runs one cycle without a writer and takes the observations it queued. */
async function queuedObservations(rig: FaultRig): Promise<Observation[]> {
  await rig.runCycleWithoutWriter();
  const messages = await rig.takeMessages(Queue.stateWriter, rig.observationMessagesPublished(), 30_000);
  return messages.flatMap((message) => {
    const parsed = parseMessage(hostObservationsSchema, message.content);
    return parsed.ok ? observationsOf(parsed.value) : [];
  });
}

let rig: FaultRig;
let outcome: FaultOutcome;
let real: Observation[] = [];
let older: Observation[] = [];

before(
  async () => {
    rig = await createFaultRig({ fault: 'reverse-order', races: 'manual' });
    const scenarioOf = new Map(rig.plan.instances.map((i) => [i.uuid, i.scenario]));
    // Agents take their epochs from here: past 1, so even an agent's first look has an older one.
    await sql`select setval('virtsync_agent_epoch', 100)`.execute(rig.database.db);
    real = await queuedObservations(rig);
    // The cloud's own changes land while the observations wait, as in the demo.
    await rig.applyRaces();
    older = real.flatMap((observation) => {
      const scenario = scenarioOf.get(observation.instanceUuid);
      return scenario !== undefined && isUpdateRule(scenario.rule) ? [olderCopy(observation, scenario)] : [];
    });
    rig.injected.observations += older.length;
    const arrivalOrder = [...older, ...real];
    const messages = publishObservations(rig.probe, [...arrivalOrder].reverse());
    await waitFor('the reversed observations queued', async () => (await rig.probe.messageCount(Queue.stateWriter)) >= messages, { timeoutMs: 10_000 });

    rig.startWriter({ WRITER_BATCH_SIZE: '10' });
    const settled = await rig.settle(60_000);
    outcome = await rig.finish(settled);
    printFaultSummary('observations delivered in reverse order (newest first), writer batches of 10', outcome, [
      `real observations drained and republished newest first: ${real.length}; older observations of the same instances behind them: ${older.length}`,
    ]);
  },
  { timeout: 120_000 },
);

after(async () => {
  await rig?.dispose(outcome === undefined || outcome.invariants.violations.length > 0);
});

defineInvariantTests(() => outcome);

test('every older observation was skipped as stale and none of them made a change', async () => {
  assert.ok(older.length >= 20, `only ${older.length} older observations`);
  assert.equal(outcome.stats.writers.outcomes['stale-observation'], older.length);
  const committedFrom = new Set((await rig.database.db.selectFrom('audit_log').select('observation_id').execute()).map((row) => row.observation_id));
  assert.deepEqual(older.filter((o) => committedFrom.has(o.observationId)), []);
  assert.equal(outcome.figures.committed, outcome.fleet.changesExpected);
});

/**
 * An observation the writer decides "equal" (the row already shows that state) confirms the
 * state as of its look, so an older look arriving after it is stale. Here: a row already
 * NOSTATE, the hypervisor reports the domain gone in look 2 (decided "equal"), then a PAUSED
 * observation of look 1 (stamped later) arrives late and must change nothing.
 */
test(
  'an older observation arriving after a newer one that changed nothing is skipped as stale',
  async () => {
    const small = await createFaultRig({ fault: 'reverse-order-after-equal', fleet: { hosts: 2, minVmsPerHost: 16, maxVmsPerHost: 16 } });
    try {
      const targets = small.plan.instances.filter((i) => i.scenario.name === 'already-nostate');
      assert.ok(targets.length > 0);
      small.startAuditSubscriber();
      const writer = small.startWriter();
      const at = Date.now();
      const newer: Observation[] = targets.map((i) => ({
        observationId: randomUUID(),
        instanceUuid: i.uuid,
        host: i.host,
        powerState: null,
        expected: { powerState: i.scenario.row.powerState, vmState: i.scenario.row.vmState, taskState: null },
        look: { epoch: 1, seq: 2 },
        observedAt: new Date(at).toISOString(),
        trigger: 'tick',
        tickId: randomUUID(),
      }));
      publishObservations(small.probe, newer);
      await waitFor('the newer observations decided', () => writer.stats.observations >= newer.length, { timeoutMs: 30_000 });
      // The older look carries the later stamp: only the look order counts.
      const older = newer.map((o) => ({
        ...o,
        observationId: randomUUID(),
        powerState: PowerState.PAUSED,
        look: { epoch: 1, seq: 1 },
        observedAt: new Date(at + 5_000).toISOString(),
        trigger: 'event' as const,
        tickId: null,
      }));
      publishObservations(small.probe, older);
      await waitFor('the older observations decided', () => writer.stats.observations >= newer.length + older.length, { timeoutMs: 30_000 });
      const rows = await small.database.db.selectFrom('instances').select(['uuid', 'power_state']).where('uuid', 'in', targets.map((i) => i.uuid)).execute();
      assert.deepEqual(
        rows.filter((row) => row.power_state !== PowerState.NOSTATE).map((row) => `${row.uuid} power=${row.power_state}`),
        [],
        'rows overwritten by an observation older than one already decided',
      );
      assert.equal(writer.stats.outcomes['stale-observation'], older.length);
    } finally {
      for (const p of small.processes) await p.stop();
      await small.dispose();
    }
  },
);
