/** `virtsync status`: the fleet as the database sees it; `--problems` only what needs an operator. */
import { type Command, Option } from 'commander';
import {
  countLiveInstancesByState,
  countSoftDeletedInstances,
  listLastHostSyncs,
  listRegisteredHosts,
  readDatabaseNow,
} from '../../shared/db/fleet-status.ts';
import { listHostLiveness, listPipelineHealth } from '../../shared/db/host-liveness.ts';
import { parseDurationMs } from './argument-parsers.ts';
import { ProblemsFoundError } from './cli-errors.ts';
import type { CliContext } from './cli-context.ts';
import { formatProblems, listProblems } from './fleet-problems.ts';
import { summarizeFleet } from './fleet-summary.ts';
import { formatFleetSummary } from './format-fleet-summary.ts';

/** Two of the default 600 s tick intervals. */
const DEFAULT_OVERDUE_AFTER_MS = 1_200_000;

export function registerStatusCommand(program: Command, context: CliContext): void {
  program
    .command('status')
    .description('fleet summary from the database: hosts and their liveness, instances per power state and vm state, last sync per host, hosts overdue')
    .option('--json', 'print the summary as one JSON document')
    .option('--problems', 'list only failing, unreachable and overdue hosts and pipeline problems; exit 1 when there are any')
    .addOption(
      new Option('--overdue-after <duration>', 'an enabled host with no successful sync received for this long is overdue: 90s, 20m, 2h (a bare number is seconds)')
        .argParser(parseDurationMs)
        .default(DEFAULT_OVERDUE_AFTER_MS, '20m'),
    )
    .action(async (options: { json?: boolean; problems?: boolean; overdueAfter: number }) => {
      const db = await context.database();
      // One snapshot: the counts, hosts and reports agree with each other.
      const rows = await db
        .transaction()
        .setIsolationLevel('repeatable read')
        .setAccessMode('read only')
        .execute(async (trx) => ({
          now: await readDatabaseNow(trx),
          hosts: await listRegisteredHosts(trx),
          counts: await countLiveInstancesByState(trx),
          softDeleted: await countSoftDeletedInstances(trx),
          lastSyncs: await listLastHostSyncs(trx),
          liveness: await listHostLiveness(trx),
          pipeline: await listPipelineHealth(trx),
        }));
      const summary = summarizeFleet(rows, options.overdueAfter);
      if (options.problems !== true) {
        context.print(options.json === true ? JSON.stringify(summary, null, 2) : formatFleetSummary(summary));
        return;
      }
      const problems = listProblems(summary);
      context.print(options.json === true ? JSON.stringify({ generatedAt: summary.generatedAt, problems }, null, 2) : formatProblems(problems));
      if (problems.length > 0) throw new ProblemsFoundError(problems.length);
    });
}
