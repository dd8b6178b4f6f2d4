/**
 * Observations travel grouped: one message per host, look, moment and cause, split only past
 * MAX_OBSERVATIONS_PER_MESSAGE; the writer takes them apart again without losing a field.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { encodeMessage, parseMessage } from '../../../../shared/messages/codec.ts';
import {
  groupObservations,
  hostObservationsSchema,
  MAX_OBSERVATIONS_PER_MESSAGE,
  type Observation,
  observationsOf,
} from '../../../../shared/messages/observation.ts';
import { PowerState } from '../../../../shared/power-state.ts';
import { VmState } from '../../../../shared/vm-state.ts';

const AT = '2026-11-24T10:00:00.000Z';
const LATER = '2026-11-24T10:00:01.000Z';
const TICK = randomUUID();
const LOOK = { epoch: 3, seq: 41 };
const AS_READ = { powerState: PowerState.RUNNING, vmState: VmState.ACTIVE, taskState: null };

function observation(overrides: Partial<Observation> = {}): Observation {
  return {
    observationId: randomUUID(),
    instanceUuid: randomUUID(),
    host: 'compute-1',
    powerState: PowerState.SHUTOFF,
    expected: AS_READ,
    observedAt: AT,
    look: LOOK,
    trigger: 'tick',
    tickId: TICK,
    ...overrides,
  };
}

/** An observation from an agent that predates look ordering: no look, no expected row. */
function legacyObservation(overrides: Partial<Observation> = {}): Observation {
  const { look: _look, expected: _expected, ...rest } = observation(overrides);
  return rest;
}

/** Through the wire and back: what the writer takes apart. */
function roundTrip(observations: readonly Observation[]): Observation[] {
  return groupObservations(observations).flatMap((message) => {
    const parsed = parseMessage(hostObservationsSchema, encodeMessage(hostObservationsSchema, message));
    assert.ok(parsed.ok, parsed.ok ? '' : parsed.reason);
    return observationsOf(parsed.value);
  });
}

describe('groupObservations', () => {
  test("a host sync's discrepancies travel as one message with their look, in their order", () => {
    const sync = [
      observation(),
      observation({ powerState: null, expected: { powerState: PowerState.SHUTOFF, vmState: VmState.SHUTOFF, taskState: null } }),
      observation({ powerState: PowerState.PAUSED }),
    ];
    const messages = groupObservations(sync);
    assert.equal(messages.length, 1);
    assert.deepEqual(messages[0], {
      schemaVersion: 1,
      host: 'compute-1',
      observedAt: AT,
      look: LOOK,
      trigger: 'tick',
      tickId: TICK,
      observations: sync.map(({ observationId, instanceUuid, powerState, expected }) => ({ observationId, instanceUuid, powerState, expected })),
    });
  });

  test('another host, look, moment, trigger or tick is another message', () => {
    const base = observation();
    const messages = groupObservations([
      base,
      observation({ host: 'compute-2' }),
      observation({ look: { epoch: LOOK.epoch, seq: LOOK.seq + 1 } }),
      observation({ look: { epoch: LOOK.epoch + 1, seq: LOOK.seq } }),
      observation({ observedAt: LATER }),
      observation({ trigger: 'event', tickId: null }),
      observation({ tickId: randomUUID() }),
      legacyObservation(),
      observation(),
      legacyObservation(),
    ]);
    assert.deepEqual(
      messages.map((message) => message.observations.length),
      [2, 1, 1, 1, 1, 1, 1, 2],
    );
    assert.deepEqual(
      messages.map((message) => message.look),
      [LOOK, LOOK, { epoch: LOOK.epoch, seq: LOOK.seq + 1 }, { epoch: LOOK.epoch + 1, seq: LOOK.seq }, LOOK, LOOK, LOOK, undefined],
      'each message carries the look of its observations; an old agent\'s carries none',
    );
  });

  test('two looks of one instance in one call travel as two messages, each valid on its own', () => {
    const uuid = randomUUID();
    const first = observation({ instanceUuid: uuid, look: { epoch: 1, seq: 1 }, powerState: PowerState.PAUSED });
    const second = observation({ instanceUuid: uuid, look: { epoch: 1, seq: 2 } });
    const messages = groupObservations([first, second]);
    assert.equal(messages.length, 2);
    for (const message of messages) assert.ok(hostObservationsSchema.safeParse(message).success, 'no instance observed twice in one message');
  });

  test(`past ${MAX_OBSERVATIONS_PER_MESSAGE} instances a host's observations are split, none lost`, () => {
    const many = Array.from({ length: MAX_OBSERVATIONS_PER_MESSAGE * 2 + 1 }, () => observation());
    const messages = groupObservations(many);
    assert.deepEqual(
      messages.map((message) => message.observations.length),
      [MAX_OBSERVATIONS_PER_MESSAGE, MAX_OBSERVATIONS_PER_MESSAGE, 1],
    );
    assert.deepEqual(messages.flatMap(observationsOf), many);
  });

  test('nothing observed, no message', () => {
    assert.deepEqual(groupObservations([]), []);
  });
});

describe('observationsOf', () => {
  test('every grouped message is valid and gives back exactly the observations that went in, look and expected row included', () => {
    const sent = [
      observation(),
      observation({ expected: { powerState: PowerState.PAUSED, vmState: VmState.PAUSED, taskState: 'rebooting' } }),
      observation({ host: 'compute-2', trigger: 'event', tickId: null, powerState: null, look: { epoch: 9, seq: 1 } }),
    ];
    assert.deepEqual(roundTrip(sent), sent);
  });

  test("an old agent's observations (no look, no expected row) are still valid and come back without them", () => {
    const sent = [legacyObservation(), legacyObservation({ powerState: null })];
    const received = roundTrip(sent);
    assert.equal(received.length, 2);
    for (const [index, observation] of received.entries()) {
      assert.equal(observation.look, undefined);
      assert.equal(observation.expected, undefined);
      assert.deepEqual({ ...observation, look: undefined, expected: undefined }, { ...sent[index], look: undefined, expected: undefined });
    }
  });

  test('a look outside the contract is refused (it would be poison, unlike a missing one)', () => {
    const [message] = groupObservations([observation()]);
    assert.ok(message !== undefined);
    for (const look of [{ epoch: 0, seq: 1 }, { epoch: 1, seq: 0 }, { epoch: 1.5, seq: 1 }, { epoch: 1 }]) {
      assert.equal(hostObservationsSchema.safeParse({ ...message, look }).success, false, JSON.stringify(look));
    }
  });
});
