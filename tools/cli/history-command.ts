/** `virtsync history <uuid>`: every change recorded for one instance, oldest first. */
import { Argument, type Command } from 'commander';
import { type AuditRecord, readInstanceHistory } from '../../shared/db/instance-history.ts';
import { isPowerState } from '../../shared/power-state.ts';
import { isVmState } from '../../shared/vm-state.ts';
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
            record.committed_at.toISOString(),
            record.host,
            record.rule,
            transitionOf(record),
            record.observed_at.toISOString(),
            record.reason,
          ]),
        ),
      );
    });
}

function transitionOf(record: AuditRecord): string {
  const before = { powerState: record.before_power_state, vmState: record.before_vm_state };
  const after = { powerState: record.after_power_state, vmState: record.after_vm_state };
  // The columns are only as good as what was written to them: show raw values rather than guess.
  if (!isPowerState(before.powerState) || !isPowerState(after.powerState) || !isVmState(before.vmState) || !isVmState(after.vmState)) {
    return `${before.powerState}/${before.vmState} → ${after.powerState}/${after.vmState}`;
  }
  return formatTransition(before, after);
}

function toJson(record: AuditRecord) {
  return {
    eventId: record.event_id,
    instanceUuid: record.instance_uuid,
    host: record.host,
    rule: record.rule,
    reason: record.reason,
    before: { powerState: record.before_power_state, vmState: record.before_vm_state },
    after: { powerState: record.after_power_state, vmState: record.after_vm_state },
    observationId: record.observation_id,
    observedAt: record.observed_at.toISOString(),
    committedAt: record.committed_at.toISOString(),
    recordedAt: record.recorded_at.toISOString(),
  };
}
