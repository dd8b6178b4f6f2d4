import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatProblems, listProblems } from '../../../../tools/cli/fleet-problems.ts';
import { summarizeFleet } from '../../../../tools/cli/fleet-summary.ts';

const now = new Date('2026-01-01T12:00:00.000Z');
const ago = (minutes: number): Date => new Date(now.getTime() - minutes * 60_000);
const view = (host: string, state: 'healthy' | 'failing' | 'unreachable', lastSyncedAt: Date | null) => ({
  host, state, since: ago(10), reason: `${state} because`, consecutiveFailures: 0, lastReceivedAt: lastSyncedAt, lastSyncedAt,
});

test('problems: failing, unreachable and overdue hosts and a silent report path; none when all is well', () => {
  const summary = summarizeFleet(
    {
      now,
      hosts: ['ok', 'sick', 'gone', 'late', 'off'].map((host) => ({ host, enabled: host !== 'off' })),
      counts: [],
      softDeleted: 0,
      lastSyncs: [],
      liveness: [view('ok', 'healthy', ago(1)), view('sick', 'failing', ago(2)), view('gone', 'unreachable', ago(3)), view('late', 'healthy', ago(60))],
      pipeline: [{ component: 'report-path', state: 'silent', since: ago(5), detail: '3 of 4 reachable hosts silent' }],
    },
    20 * 60_000,
  );
  const problems = listProblems(summary).map((p) => `${p.subject} ${p.problem}`);
  assert.deepEqual(problems, ['pipeline:report-path silent', 'gone unreachable', 'late overdue', 'sick failing']);
  assert.match(formatProblems(listProblems(summary)), /gone +unreachable +since/);

  const calm = summarizeFleet({ now, hosts: [{ host: 'ok', enabled: true }], counts: [], softDeleted: 0, lastSyncs: [], liveness: [view('ok', 'healthy', ago(1))], pipeline: [] }, 20 * 60_000);
  assert.deepEqual(listProblems(calm), []);
  assert.match(formatProblems([]), /no problems/);
});
