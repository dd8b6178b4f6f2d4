/**
 * `virtsync sync <host>…`: an immediate tick per host (manual-ticks.ts). With --wait it
 * then waits for each host's report and prints the outcome, exiting 1 if a host failed,
 * was skipped (breaker open) or did not report in time.
 */
import { Argument, type Command } from 'commander';
import { tickQueue } from '../../shared/bus/topology.ts';
import { listRegisteredHosts } from '../../shared/db/fleet-status.ts';
import type { HostReport } from '../../shared/messages/host-report.ts';
import type { Tick } from '../../shared/messages/tick.ts';
import { collectHostName, wholeNumber } from './argument-parsers.ts';
import type { CliContext } from './cli-context.ts';
import { FailedError, UsageError } from './cli-errors.ts';
import { publishManualTicks } from './manual-ticks.ts';
import { listenForReports } from './report-listener.ts';
import { renderTable } from './text-table.ts';

const DEFAULT_WAIT_TIMEOUT_S = 60;

interface SyncOptions {
  force?: boolean;
  json?: boolean;
  wait?: boolean;
  timeout: number;
}

export function registerSyncCommand(program: Command, context: CliContext): void {
  program
    .command('sync')
    .description("publish an immediate tick for each host: the host's agent syncs it now instead of at its next slot")
    .addArgument(new Argument('<host...>', 'compute host names, as in compute_hosts').argParser(collectHostName))
    .option('--force', 'publish even for hosts with no compute_hosts row (skips the database check)')
    .option('--wait', "wait for each host's report and print the outcome; exit 1 if a host failed or did not report in time")
    .option('--timeout <seconds>', 'with --wait: how long to wait for the reports, in seconds', wholeNumber(1), DEFAULT_WAIT_TIMEOUT_S)
    .option('--json', 'print the published ticks (with --wait: the outcomes) as JSON')
    .action(async (hosts: string[], options: SyncOptions) => {
      const unique = [...new Set(hosts)];
      if (options.force !== true) await checkRegistered(context, unique);
      const listener = options.wait === true ? await listenForReports(context, unique, { unknownDomains: false }) : undefined;
      try {
        const ticks = await publishManualTicks(context, unique, {
          onPublished: (tick) => {
            if (options.json !== true) context.print(`tick ${tick.tickId} published for ${tick.host} (queue ${tickQueue(tick.host)})`);
          },
        });
        if (listener === undefined) {
          if (options.json === true) context.print(JSON.stringify(ticks, null, 2));
          return;
        }
        if (options.json !== true) context.note(`waiting up to ${options.timeout} s for ${ticks.length === 1 ? 'the report' : `${ticks.length} reports`}`);
        const outcomes = [...(await listener.waitForReports(ticks, options.timeout * 1000))].map(([tick, report]) => outcomeOf(tick, report));
        context.print(options.json === true ? JSON.stringify(outcomes, null, 2) : formatOutcomes(outcomes));
        const bad = outcomes.filter((outcome) => outcome.outcome !== 'synced');
        if (bad.length > 0) throw new FailedError(`${bad.length} of ${outcomes.length} hosts did not sync: ${bad.map((o) => `${o.host} (${o.outcome})`).join(', ')}`);
      } finally {
        await listener?.close();
      }
    });
}

export interface SyncOutcome {
  host: string;
  tickId: string;
  outcome: HostReport['outcome'] | 'timed-out';
  error: string | null;
  report: HostReport | null;
}

function outcomeOf(tick: Tick, report: HostReport | undefined): SyncOutcome {
  if (report === undefined) return { host: tick.host, tickId: tick.tickId, outcome: 'timed-out', error: 'no report before the deadline', report: null };
  return { host: tick.host, tickId: tick.tickId, outcome: report.outcome, error: report.error, report };
}

function formatOutcomes(outcomes: readonly SyncOutcome[]): string {
  const rows = outcomes.map(({ host, outcome, error, report }) =>
    report === null || outcome !== 'synced'
      ? [host, outcome, '-', '-', '-', '-', '-', error ?? '']
      : [host, outcome, report.compared, report.drifted, report.missing, report.unknown, `${Math.round(report.durationMs)} ms`, ''],
  );
  return renderTable(['HOST', 'OUTCOME', 'COMPARED', 'DRIFTED', 'MISSING', 'UNKNOWN', 'DURATION', 'ERROR'], rows);
}

/** A typo would otherwise declare a durable tick queue that no agent ever consumes. */
async function checkRegistered(context: CliContext, hosts: readonly string[]): Promise<void> {
  const registered = new Map((await listRegisteredHosts(await context.database())).map((row) => [row.host, row.enabled]));
  const unknown = hosts.filter((host) => !registered.has(host));
  if (unknown.length > 0) {
    throw new UsageError(`not in compute_hosts: ${unknown.join(', ')} (check the name, or pass --force to publish anyway)`);
  }
  for (const host of hosts.filter((name) => registered.get(name) === false)) {
    context.note(`note: ${host} is disabled in compute_hosts (no periodic ticks); publishing this manual tick anyway`);
  }
}
