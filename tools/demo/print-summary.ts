import { RULE_REASONS } from '../../shared/sync-rules.ts';
import type { DemoSummary } from './demo-summary.ts';

const n = (value: number): string => value.toLocaleString('en-US');
const s = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

export function formatSummary(summary: DemoSummary): string {
  const lines = [
    '',
    `virtsync demo: ${n(summary.hosts)} hosts, ${n(summary.instances)} instances`,
    '',
    `  instances compared with libvirt   ${n(summary.compared)}`,
    `  hosts with a count mismatch       ${n(summary.hostsWithCountMismatch)}`,
    `  domains no row places             ${n(summary.unknownDomains)}`,
    `  observations published            ${n(summary.observationsPublished)}`,
    '',
    '  writer decisions by rule          expected    found',
    ...summary.rules.map(
      (r) => `    ${r.rule.padEnd(20)}${n(r.expected).padStart(14)}${n(r.found).padStart(9)}${r.expected === r.found ? '' : '   <-- differs'}   ${RULE_REASONS[r.rule]}`,
    ),
    '',
    `  rows committed                    ${n(summary.rowsCommitted)}`,
    `  change events received downstream ${n(summary.eventsReceivedDownstream)}`,
    `  audit log rows                    ${n(summary.auditRows)} (${summary.auditRows === summary.rowsCommitted ? 'one per committed change' : 'DIFFERS from committed changes'})`,
    `  database matches expected state   ${summary.mismatches.length === 0 ? `yes, all ${n(summary.instances)} instances` : `NO, ${summary.mismatches.length} rows differ`}`,
    ...summary.mismatches.slice(0, 10).map((m) => `    ${m.uuid} (${m.scenario}): expected ${m.expected}, got ${m.actual}`),
    `  services stopped cleanly          ${Object.entries(summary.serviceExitCodes).map(([name, code]) => `${name}=${code}`).join(' ')}`,
    '',
    `  wall time ${s(summary.timingsMs.total)} (fleet ${s(summary.timingsMs.generate)}, tick cycle ${s(summary.timingsMs.cycle)}, writer to audit ${s(summary.timingsMs.commit)}) on ${summary.machine.cores} cores, ${summary.machine.memoryGiB} GiB`,
    '',
    summary.ok ? 'RESULT: OK, the instances table matches the hypervisors' : 'RESULT: FAILED',
  ];
  return lines.join('\n');
}
