import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type HostLivenessInput, judgeLiveness, type LivenessSettings } from '../../../../services/tick-producer/liveness-rules.ts';
import type { LivenessState } from '../../../../shared/messages/host-liveness.ts';

const INTERVAL = 1_000;
const SETTINGS: LivenessSettings = {
  intervalMs: INTERVAL,
  failingAfterSyncs: 3,
  unreachableAfterIntervals: 3,
  reportPathSilentFraction: 0.5,
  reportPathSilentMinHosts: 2,
};
const NOW = 1_000_000;

/** A host judged since long ago, last heard of `silentMs` ago, with `failures` failed syncs in a row. */
function host(name: string, state: LivenessState, silentMs: number | null, failures = 0): HostLivenessInput {
  return {
    host: name,
    current: { state, trackedSinceMs: 0 },
    receipt: silentMs === null ? undefined : { lastReceivedAtMs: NOW - silentMs, consecutiveFailures: failures },
  };
}

function statesOf(inputs: HostLivenessInput[]): Record<string, LivenessState> {
  return Object.fromEntries(judgeLiveness(inputs, SETTINGS, NOW).hosts.map((h) => [h.host, h.state]));
}

describe('judgeLiveness', () => {
  const cases: Array<[string, HostLivenessInput, LivenessState]> = [
    ['heard of recently, syncing', host('a', 'healthy', 500), 'healthy'],
    ['failures below the limit', host('a', 'healthy', 500, 2), 'healthy'],
    ['failures at the limit', host('a', 'healthy', 500, 3), 'failing'],
    ['failing recovers when a sync succeeds', host('a', 'failing', 500, 0), 'healthy'],
    ['silent just under the limit', host('a', 'healthy', 2_999), 'healthy'],
    ['silent at the limit', host('a', 'healthy', 3_000), 'unreachable'],
    ['silence beats failing', host('a', 'failing', 5_000, 9), 'unreachable'],
    ['unreachable recovers when reports resume', host('a', 'unreachable', 100), 'healthy'],
    ['never heard of, judged for long', host('a', 'healthy', null), 'unreachable'],
  ];
  for (const [name, input, expected] of cases) {
    test(name, () => {
      // Two busy neighbours keep a single silent host from looking like mass silence.
      const states = statesOf([input, host('n1', 'healthy', 10), host('n2', 'healthy', 10)]);
      assert.equal(states.a, expected);
    });
  }

  test('a host not judged before starts healthy and its silence counts from now', () => {
    const fresh: HostLivenessInput = { host: 'new', current: undefined, receipt: { lastReceivedAtMs: NOW - 99_000, consecutiveFailures: 0 } };
    const [judged] = judgeLiveness([fresh], SETTINGS, NOW).hosts;
    assert.deepEqual([judged?.state, judged?.previous, judged?.isNew], ['healthy', 'healthy', true]);
  });

  test('most reachable hosts silent together: the report path is down, none declared unreachable', () => {
    const inputs = [host('a', 'healthy', 4_000), host('b', 'failing', 4_000, 3), host('c', 'healthy', 10), host('dead', 'unreachable', 60_000)];
    const judgement = judgeLiveness(inputs, SETTINGS, NOW);
    assert.equal(judgement.reportPathSilent, true);
    assert.deepEqual([judgement.newlySilent, judgement.goingSilent, judgement.reachable], [2, 2, 3]);
    assert.deepEqual(statesOf(inputs), { a: 'healthy', b: 'failing', c: 'healthy', dead: 'unreachable' });
  });

  test('the report path down: the first host to reach the limit is not judged alone, its neighbours are an interval behind', () => {
    // Their last reports fell at different moments of an interval before the report path went down.
    const inputs = [host('first', 'healthy', 3_000), host('b', 'healthy', 2_400), host('c', 'healthy', 2_100), host('d', 'healthy', 10)];
    const judgement = judgeLiveness(inputs, SETTINGS, NOW);
    assert.deepEqual([judgement.reportPathSilent, judgement.newlySilent, judgement.goingSilent], [true, 1, 3]);
    assert.deepEqual(statesOf(inputs), { first: 'healthy', b: 'healthy', c: 'healthy', d: 'healthy' });
  });

  test('hosts that report every interval are never going silent: one dead host among them is unreachable', () => {
    // A healthy host's last report is at most an interval (and the time to record it) old.
    const inputs = [host('dead', 'healthy', 3_000), ...['a', 'b', 'c'].map((name) => host(name, 'healthy', 1_400))];
    const judgement = judgeLiveness(inputs, SETTINGS, NOW);
    assert.deepEqual([judgement.reportPathSilent, judgement.goingSilent], [false, 1]);
    assert.equal(statesOf(inputs).dead, 'unreachable');
  });

  test('going silent counts only once someone reaches the limit', () => {
    const inputs = ['a', 'b', 'c'].map((name) => host(name, 'healthy', 2_500));
    const judgement = judgeLiveness(inputs, SETTINGS, NOW);
    assert.deepEqual([judgement.reportPathSilent, judgement.newlySilent, judgement.goingSilent], [false, 0, 3]);
  });

  test('a minority silent, or fewer than the minimum: those hosts are unreachable', () => {
    assert.equal(statesOf([host('a', 'healthy', 4_000), host('b', 'healthy', 10), host('c', 'healthy', 10)]).a, 'unreachable');
    // A fleet of one: its silence is the host's own.
    const alone = judgeLiveness([host('a', 'healthy', 4_000)], SETTINGS, NOW);
    assert.equal(alone.reportPathSilent, false);
    assert.equal(alone.hosts[0]?.state, 'unreachable');
  });

  test('hosts already unreachable do not make the rest look like mass silence', () => {
    // Counting d1 and d2, 4 of 7 hosts are silent; of the 5 reachable ones, 2 went silent.
    const inputs = [
      ...['d1', 'd2'].map((name) => host(name, 'unreachable', 60_000)),
      ...['a', 'b'].map((name) => host(name, 'healthy', 4_000)),
      ...['c', 'e', 'f'].map((name) => host(name, 'healthy', 10)),
    ];
    const judgement = judgeLiveness(inputs, SETTINGS, NOW);
    assert.equal(judgement.reportPathSilent, false);
    assert.deepEqual([statesOf(inputs).a, statesOf(inputs).b], ['unreachable', 'unreachable']);
  });
});
