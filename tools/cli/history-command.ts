/** `virtsync history <uuid>`: every change recorded for one instance, oldest first. */
import { Argument, type Command } from 'commander';
import { type AuditRecord, readInstanceHistory } from '../../shared/db/audit-log.ts';
import { parseInstanceUuid } from './argument-parsers.ts';
import type { CliContext } from './cli-context.ts';
import { NotFoundError } from './cli-errors.ts';
import { formatTransition } from './format-change.ts';
import { renderTable } from './text-table.ts';

export function registerHistoryCommand(program: Command, context: CliContext): void {
  program
    .command('history')
    .description('the audit trail of one instance: every change virtsync committed to it, oldest first')
    .addArgument(new Argument('<uuid>', 'the instance UUID').argParser(parseInstanceUuid))
    .option('--json', 'print the entries as a JSON array')
    .action(async (uuid: string, options: { json?: boolean }) => {
      const records = await readInstanceHistory(await context.database(), uuid);
      if (records.length === 0) throw new NotFoundError(`no audit entries for instance ${uuid} (virtsync never changed it, or the uuid is wrong)`);
      if (options.json === true) {
        context.print(JSON.stringify(records.map(toJson), null, 2));
        return;
      }
      context.print(`history of instance ${uuid}: ${records.length} change${records.length === 1 ? '' : 's'}, oldest first\n`);
      context.print(
        renderTable(
          ['committed', 'host', 'rule', 'power state/vm state', 'observed', 'reason'],
          records.map((record) => [
            record.committedAt.toISOString(),
            record.host,
            record.rule,
            formatTransition(record.before, record.after),
            record.observedAt.toISOString(),
            record.reason,
          ]),
        ),
      );
    });
}

function toJson(record: AuditRecord) {
  return { ...record, observedAt: record.observedAt.toISOString(), committedAt: record.committedAt.toISOString(), recordedAt: record.recordedAt.toISOString() };
}
