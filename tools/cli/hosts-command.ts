/**
 * `virtsync hosts list|enable|disable`: the compute hosts virtsync ticks (compute_hosts),
 * without SQL by hand. Enabling or disabling needs a database user that may update
 * compute_hosts (the schema owner); `virtsync_reader` may only list.
 */
import { Argument, type Command } from 'commander';
import { setHostsEnabled } from '../../shared/db/compute-hosts.ts';
import { listLastHostSyncs, listRegisteredHosts, readDatabaseNow } from '../../shared/db/fleet-status.ts';
import { collectHostName } from './argument-parsers.ts';
import type { CliContext } from './cli-context.ts';
import { NotFoundError } from './cli-errors.ts';
import { formatAge, renderTable } from './text-table.ts';

export function registerHostsCommand(program: Command, context: CliContext): void {
  const hosts = program.command('hosts').description('the compute hosts virtsync ticks (compute_hosts): list them, enable or disable their periodic sync');

  hosts
    .command('list')
    .description('every registered host: enabled or not, and its last sync report')
    .option('--json', 'print the hosts as JSON')
    .action(async (options: { json?: boolean }) => {
      const db = await context.database();
      const [now, registered, lastSyncs] = [await readDatabaseNow(db), await listRegisteredHosts(db), await listLastHostSyncs(db)];
      const last = new Map(lastSyncs.map((sync) => [sync.host, sync]));
      const rows = registered.map(({ host, enabled }) => {
        const sync = last.get(host);
        return { host, enabled, lastOutcome: sync?.outcome ?? null, lastStartedAt: sync?.startedAt.toISOString() ?? null, lastError: sync?.error ?? null };
      });
      if (options.json === true) return context.print(JSON.stringify(rows, null, 2));
      if (rows.length === 0) return context.print('no hosts in compute_hosts');
      context.print(
        renderTable(
          ['HOST', 'ENABLED', 'LAST SYNC', 'OUTCOME', 'ERROR'],
          rows.map((row) => [
            row.host,
            row.enabled ? 'yes' : 'no',
            row.lastStartedAt === null ? 'never' : formatAge(now.getTime() - Date.parse(row.lastStartedAt)),
            row.lastOutcome ?? '-',
            row.lastError ?? '',
          ]),
        ),
      );
    });

  for (const enabled of [true, false]) {
    const verb = enabled ? 'enable' : 'disable';
    hosts
      .command(verb)
      .description(enabled ? 'tick these hosts every interval again' : 'stop ticking these hosts (a manual `virtsync sync` still works)')
      .addArgument(new Argument('<host...>', 'compute host names, as in compute_hosts').argParser(collectHostName))
      .action(async (names: string[]) => {
        const unique = [...new Set(names)];
        const changed = await setHostsEnabled(await context.database(), unique, enabled);
        for (const host of changed) context.print(`${host} ${verb}d`);
        const missing = unique.filter((host) => !changed.includes(host));
        if (missing.length > 0) throw new NotFoundError(`not in compute_hosts: ${missing.join(', ')}`);
      });
  }
}
