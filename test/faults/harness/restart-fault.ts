/**
 * The shape of every fault that takes a dependency away under a running system and gives
 * it back (a broker or database restart): the services and a tick producer (1 s cycles)
 * run; at the first host report (or before anything starts) the dependency goes away,
 * for a few seconds; once it is back the producer
 * runs until every host has been synced again, then the system must settle with nothing
 * lost. The run records how long the dependency was away and how long the system took,
 * once it was back, to sync every host again.
 */
import { after, before, describe } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { waitFor } from '../../../tools/wait-for.ts';
import { type FaultOutcome, type FaultRig, type FaultRigOptions, createFaultRig, SERVICE_START_TIMEOUT_MS } from './fault-rig.ts';
import { printFaultSummary } from './fault-report.ts';
import { defineInvariantTests } from './invariant-tests.ts';

export interface RestartFaultRun {
  rig: FaultRig;
  outcome: FaultOutcome;
  /** The dependency away: from the fault until it answered again. */
  outageMs: number;
  /** From the dependency answering again until every host had been synced after it. */
  recoveryMs: number;
  /** Host reports seen before the fault. */
  reportsBefore: number;
}

export function describeRestartFault(options: {
  fault: string;
  title: string;
  rig: () => Promise<Omit<FaultRigOptions, 'fault'>>;
  /** Takes the dependency away (and waits until the services have noticed, where they show it). */
  away: (rig: FaultRig) => Promise<void>;
  /** Brings it back; resolves once it answers again. */
  back: (rig: FaultRig) => Promise<void>;
  /** Away at the first host report of a cycle (default), or before any service starts. */
  at?: 'mid-cycle' | 'before-start';
  /** How long it stays away once taken away (default 3 s). */
  awayMs?: number;
  /** Checks of this fault beyond the invariants. */
  tests?: (run: () => RestartFaultRun) => void;
}): void {
  describe(options.fault, () => {
    let run: RestartFaultRun | undefined;
    let rig: FaultRig | undefined;
    before(
      async () => {
        rig = await createFaultRig({ fault: options.fault, ...(await options.rig()) });
        const r = rig;
        const faultAt = Date.now();
        if (options.at === 'before-start') await options.away(r);
        r.startAuditSubscriber();
        r.startWriter();
        r.agentHosts.forEach((_, index) => r.startAgent(index));
        await waitFor('the services connected', () => r.processes.every((p) => p.stats.brokerConnects >= 1), { timeoutMs: SERVICE_START_TIMEOUT_MS });
        const producer = r.startTickProducer({ intervalMs: 1_000, cycles: 0 });
        // Mid-cycle: away at the first host report. Before start: the producer's leader lock may itself need the dependency, so nothing is awaited.
        if (options.at !== 'before-start') await waitFor('the first host report', () => r.recorder.reports.length >= 1, { timeoutMs: SERVICE_START_TIMEOUT_MS });

        const reportsBefore = r.recorder.reports.length;
        const awayAt = options.at === 'before-start' ? faultAt : Date.now();
        if (options.at !== 'before-start') await options.away(r);
        await sleep(options.awayMs ?? 3_000);
        await options.back(r);
        const backAt = Date.now();
        const reportsAtBack = r.recorder.reports.length;
        const syncedSince = (): number => new Set(r.recorder.reports.slice(reportsAtBack).filter((report) => report.outcome === 'synced').map((report) => report.host)).size;
        await waitFor('every host synced after the dependency came back', () => syncedSince() >= r.plan.hosts.length, { timeoutMs: 120_000, intervalMs: 100 });
        const recoveryMs = Date.now() - backAt;
        await producer.stop();

        const settled = await r.settle(90_000);
        const outcome = await r.finish(settled);
        run = { rig: r, outcome, outageMs: backAt - awayAt, recoveryMs, reportsBefore };
        printFaultSummary(options.title, outcome, [
          `dependency away ${(run.outageMs / 1000).toFixed(1)} s ${options.at === 'before-start' ? 'from before the services started' : `from the moment of ${reportsBefore} host reports`}; every host synced again ${(recoveryMs / 1000).toFixed(1)} s after it was back`,
          `broker connects per process: ${r.processes.map((p) => `${p.name}=${p.stats.brokerConnects}`).join(' ')}`,
        ]);
      },
      { timeout: 300_000 },
    );
    after(async () => {
      await rig?.dispose(run === undefined || run.outcome.invariants.violations.length > 0);
    });

    const current = (): RestartFaultRun => {
      if (run === undefined) throw new Error(`${options.fault} did not run`);
      return run;
    };
    defineInvariantTests(() => current().outcome);
    options.tests?.(current);
  });
}
