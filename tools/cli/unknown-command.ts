/**
 * `virtsync unknown [--host H]…`: the domains the hypervisors run that no instances row
 * places on their host. virtsync keeps no list of them (they are reported, never written),
 * so the command asks: it syncs the hosts now (every enabled host by default) and collects
 * what their agents report. Exits 1 if a host did not report in time (the list would be
 * incomplete), and at once, publishing nothing, if no agent consumes any of the hosts' ticks.
 */
import type { Command } from 'commander';
import { listEnabledHosts } from '../../shared/db/compute-hosts.ts';
import { powerStateKey } from '../../shared/power-state.ts';
import { collectHostName, wholeNumber } from './argument-parsers.ts';
import type { CliContext } from './cli-context.ts';
import { FailedError, UsageError } from './cli-errors.ts';
import { publishManualTicks } from './manual-ticks.ts';
import { listenForReports } from './report-listener.ts';
import { renderTable } from './text-table.ts';

export function registerUnknownCommand(program: Command, context: CliContext): void {
  program
    .command('unknown')
    .description('domains the hypervisors run that no instances row places on their host: syncs the hosts now and lists what their agents find')
    .option('--host <host>', 'only this host (repeatable; default: every enabled host)', collectHostName)
    .option('--timeout <seconds>', "how long to wait for the hosts' reports, in seconds", wholeNumber(1), 60)
    .option('--json', 'print the unknown domains as JSON (the unknown-domain contract)')
    .action(async (options: { host?: string[]; timeout: number; json?: boolean }) => {
      const hosts = options.host === undefined ? await listEnabledHosts(await context.database()) : [...new Set(options.host)];
      if (hosts.length === 0) throw new UsageError('no enabled hosts in compute_hosts (name one with --host)');
      const listener = await listenForReports(context, hosts, { unknownDomains: true });
      try {
        // A query, not a request: with no agent running nothing can answer, so do not wait for it.
        const ticks = await publishManualTicks(context, hosts, { requireAnAgent: true });
        if (options.json !== true) context.note(`syncing ${hosts.length} host${hosts.length === 1 ? '' : 's'}, waiting up to ${options.timeout} s for the reports`);
        const reports = await listener.waitForReports(ticks, options.timeout * 1000);
        const domains = [...listener.unknownDomains].sort((a, b) => a.host.localeCompare(b.host) || a.instanceUuid.localeCompare(b.instanceUuid));
        const unsynced = [...reports].filter(([, report]) => report?.outcome !== 'synced').map(([tick, report]) => `${tick.host} (${report?.outcome ?? 'timed-out'})`);
        if (options.json === true) context.print(JSON.stringify(domains, null, 2));
        else if (domains.length === 0) context.print(unsynced.length === 0 ? 'no unknown domains' : 'no unknown domains on the hosts that reported');
        else {
          context.print(
            renderTable(
              ['HOST', 'DOMAIN UUID', 'POWER STATE', 'OBSERVED'],
              domains.map((d) => [d.host, d.instanceUuid, d.powerState === null ? 'unreadable' : powerStateKey(d.powerState), d.observedAt]),
            ),
          );
        }
        if (unsynced.length > 0) throw new FailedError(`incomplete: ${unsynced.length} of ${hosts.length} hosts did not sync: ${unsynced.join(', ')}`);
      } finally {
        await listener.close();
      }
    });
}
