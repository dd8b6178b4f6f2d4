/**
 * Faults: the database server restarted under the system, on a PostgreSQL cluster of the
 * test's own (the machine's cluster is shared and never restarted), each fault with a
 * database of its own on that cluster; the server stays down 3 s each time:
 *  - postgres-restart-fast: `pg_ctlcluster stop -m fast` at the first host report of a
 *    cycle (sessions terminated, transactions rolled back, a clean shutdown), then start;
 *  - postgres-restart-immediate: `stop -m immediate` (no shutdown checkpoint: a crash,
 *    recovered from the WAL at start), then start;
 *  - postgres-down-at-start: the server is down before any service starts; the services
 *    must start anyway (the tick producer cannot take its leader lock, which lives in the
 *    database, so nothing is ticked), wait for it, and catch up once it is back.
 * Expected: no service crashes or needs a hand, every host is synced again, nothing lost
 * or applied twice, nothing dead-lettered.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createPostgresCluster } from '../../tools/local-env/engines/postgres-cluster.ts';
import { describeRestartFault, type RestartFaultRun } from './harness/restart-fault.ts';
import { useOwnEngine } from './harness/own-engine.ts';

const theCluster = useOwnEngine('the PostgreSQL cluster', () => createPostgresCluster(), { startTimeoutMs: 120_000 });
const onTheCluster = async (): Promise<{ engines: { databaseServerUrl: string } }> => ({ engines: { databaseServerUrl: theCluster().serverUrl } });

const cleanRun = (run: () => RestartFaultRun): void => {
  test('nothing dead-lettered, one change per drifted instance', () => {
    const { outcome } = run();
    assert.equal(outcome.figures.deadlettered, 0);
    assert.equal(outcome.figures.committed, outcome.fleet.changesExpected);
  });
};

for (const mode of ['fast', 'immediate'] as const) {
  describeRestartFault({
    fault: `postgres-restart-${mode}`,
    title: `PostgreSQL stopped with -m ${mode} mid-cycle and started 3 s later (a cluster of the test's own)`,
    rig: onTheCluster,
    away: () => theCluster().stop(mode),
    back: () => theCluster().start(),
    tests: cleanRun,
  });
}

describeRestartFault({
  fault: 'postgres-down-at-start',
  title: 'PostgreSQL down when every service starts, started once they run (a cluster of the test\'s own)',
  rig: onTheCluster,
  at: 'before-start',
  away: () => theCluster().stop('fast'),
  back: () => theCluster().start(),
  tests: (run) => {
    cleanRun(run);
    test('no host was synced while the database was down', () => {
      assert.deepEqual(run().rig.recorder.reports.slice(0, run().reportsBefore).filter((report) => report.outcome === 'synced'), []);
    });
  },
});
