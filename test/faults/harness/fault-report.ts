/**
 * The figures of one fault, for people (a few summary lines) and for machines (exactly
 * one `FAULT ...` line), printed on stdout from inside a test: node's test runner passes
 * a test's stdout through as `# ` comment lines, so both appear in `npm test` output.
 */
import type { FaultOutcome } from './fault-rig.ts';

export interface FaultFigures {
  /** Observations the agents published (their host reports' `published`) plus messages the test injected. */
  in: number;
  /** change_outbox rows: changes committed to `instances`. */
  committed: number;
  /** Change events a downstream watcher received on virtsync.changes (a republished event counts each time). */
  published: number;
  /** Redelivered or duplicated messages absorbed without effect: writer decisions beyond the distinct observations routed, audit rows skipped, events received twice. */
  duplicates: number;
  /** Messages in virtsync.dead-letter at the end. */
  deadlettered: number;
  /** Drifted instances not in their expected end state, plus committed changes with no audit row. Must be 0. */
  lost: number;
}

export function formatFaultLine(name: string, f: FaultFigures): string {
  return `FAULT ${name} in=${f.in} committed=${f.committed} published=${f.published} duplicates=${f.duplicates} deadlettered=${f.deadlettered} lost=${f.lost}`;
}

/** Prints the human summary and the machine-readable line. */
export function printFaultSummary(title: string, outcome: FaultOutcome, details: readonly string[]): void {
  const { figures, stats, invariants } = outcome;
  const lines = [
    `fault: ${title}`,
    `  fleet: ${outcome.fleet.hosts} hosts, ${outcome.fleet.instances} instances, ${outcome.fleet.drifted} drifted (${outcome.fleet.changesExpected} need a change)`,
    ...details.map((detail) => `  ${detail}`),
    `  observations in ${figures.in}, decided by writers ${stats.writers.observations} in ${stats.writers.batches} batches, outcomes ${JSON.stringify(stats.writers.outcomes)}`,
    `  changes committed ${figures.committed}, received downstream ${figures.published}, audit rows ${invariants.auditRows} (audit duplicates skipped ${stats.audit.auditDuplicates})`,
    `  writer retries ${stats.writers.retries.length}${stats.writers.retries.length > 0 ? ` (${[...new Set(stats.writers.retries.map((r) => r.code ?? r.message))].join(', ')})` : ''}, breaker opened ${stats.all.breakerOpened}x, broker reconnects ${stats.all.brokerConnects}, dead-lettered ${figures.deadlettered}`,
    `  settled ${outcome.settled ? `in ${(outcome.settleMs / 1000).toFixed(1)} s` : 'NO (deadline passed)'}; crashed: ${outcome.crashed.length === 0 ? 'none' : outcome.crashed.join(', ')}; lost ${figures.lost}`,
    ...invariants.violations.slice(0, 20).map((violation) => `  VIOLATION ${violation}`),
    ...(invariants.violations.length > 0 ? [`  service logs (kept): ${outcome.logDir}`] : []),
    outcome.line,
  ];
  console.log(lines.join('\n'));
}
