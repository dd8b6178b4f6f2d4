/** `virtsync status` for a person: totals, states, then one line per host. */
import type { FleetSummary, HostSummary } from './fleet-summary.ts';
import { formatAge, formatDuration, formatNumber as n, renderTable } from './text-table.ts';

export function formatFleetSummary(summary: FleetSummary): string {
  const { hosts, instances } = summary;
  const powerRows = Object.entries(instances.byPowerState).filter(([, count]) => count > 0);
  const vmRows = Object.entries(instances.byVmState).filter(([, count]) => count > 0);
  const lines = [
    `virtsync fleet status at ${summary.generatedAt}`,
    '',
    `hosts      ${n(hosts.registered)} registered, ${n(hosts.enabled)} enabled, ${n(hosts.overdue)} overdue (no successful sync in ${formatDuration(summary.overdueAfterMs)}), ${n(hosts.failing)} failing, ${n(hosts.unreachable)} unreachable`,
    `instances  ${n(instances.live)} live, ${n(instances.softDeleted)} soft-deleted`,
  ];
  for (const component of summary.pipeline.filter((c) => c.state !== 'ok')) {
    lines.push(`PIPELINE   ${component.component} ${component.state} since ${component.since}: ${component.detail}`);
  }
  if (hosts.unregisteredWithInstances > 0) {
    lines.push(`WARNING    ${n(hosts.unregisteredWithInstances)} host(s) have instances but no compute_hosts row: they are never ticked`);
  }
  if (powerRows.length > 0) {
    lines.push('', renderTable(['power state', 'instances'], powerRows), '', renderTable(['vm state', 'instances'], vmRows));
  }
  if (summary.hostList.length > 0) {
    lines.push('', renderTable(['host', 'enabled', 'liveness', 'instances', 'last sync', 'trigger', 'outcome', 'compared', 'drifted', 'missing', 'note'], summary.hostList.map(hostRow)));
  }
  return lines.join('\n');
}

function hostRow(host: HostSummary): Array<string | number> {
  const sync = host.lastSync;
  const dash = (value: number | null | undefined): string | number => value ?? '-';
  const notes = [
    host.registered ? '' : 'not in compute_hosts',
    host.overdue ? 'OVERDUE' : '',
    sync?.error ?? '',
  ].filter((note) => note !== '');
  return [
    host.host,
    host.registered ? (host.enabled ? 'yes' : 'no') : '-',
    host.liveness === null ? '-' : host.liveness.state === 'healthy' ? 'healthy' : host.liveness.state.toUpperCase(),
    host.instances,
    sync === null ? 'never' : `${sync.startedAt} (${formatAge(sync.ageMs)})`,
    sync?.trigger ?? '-',
    sync?.outcome ?? '-',
    dash(sync?.compared),
    dash(sync?.drifted),
    dash(sync?.missing),
    notes.join('; '),
  ];
}
