/**
 * Observations travel grouped: one message per host, moment and cause, split only past
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

const AT = '2026-11-24T10:00:00.000Z';
const LATER = '2026-11-24T10:00:01.000Z';
const TICK = randomUUID();

function observation(overrides: Partial<Observation> = {}): Observation {
  return {
    observationId: randomUUID(),
    instanceUuid: randomUUID(),
    host: 'compute-1',
    powerState: PowerState.SHUTOFF,
    observedAt: AT,
    trigger: 'tick',
    tickId: TICK,
    ...overrides,
  };
}

describe('groupObservations', () => {
  test("a host sync's discrepancies travel as one message, in their order", () => {
    const sync = [observation(), observation({ powerState: null }), observation({ powerState: PowerState.PAUSED })];
    const messages = groupObservations(sync);
    assert.equal(messages.length, 1);
    assert.deepEqual(messages[0], {
      schemaVersion: 1,
      host: 'compute-1',
      observedAt: AT,
      trigger: 'tick',
      tickId: TICK,
      observations: sync.map(({ observationId, instanceUuid, powerState }) => ({ observationId, instanceUuid, powerState })),
    });
  });

  test('another host, moment, trigger or tick is another message', () => {
    const base = observation();
    const messages = groupObservations([
      base,
      observation({ host: 'compute-2' }),
      observation({ observedAt: LATER }),
      observation({ trigger: 'event', tickId: null }),
      observation({ tickId: randomUUID() }),
      observation(),
    ]);
    assert.deepEqual(
      messages.map((message) => message.observations.length),
      [2, 1, 1, 1, 1],
    );
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
  test('every grouped message is valid and gives back exactly the observations that went in', () => {
    const sent = [observation(), observation({ host: 'compute-2', trigger: 'event', tickId: null, powerState: null })];
    const received = groupObservations(sent).flatMap((message) => {
      const parsed = parseMessage(hostObservationsSchema, encodeMessage(hostObservationsSchema, message));
      assert.ok(parsed.ok, parsed.ok ? '' : parsed.reason);
      return observationsOf(parsed.value);
    });
    assert.deepEqual(received, sent);
  });
});
