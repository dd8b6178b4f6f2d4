/**
 * `virtsync status --problems`: what needs an operator, from the fleet summary. A host is
 * a problem when failing, unreachable or overdue; the pipeline when a component is not `ok`
 * (the report path silent). Scripts read the exit code: non-zero when there is any.
 */
import type { FleetSummary } from './fleet-summary.ts';
import { renderTable } from './text-table.ts';

export interface Problem {
  /** A host name, or `pipeline:<component>`. */
  subject: string;
  problem: string;
  detail: string;
}

export function listProblems(summary: FleetSummary): Problem[] {
  const pipeline = summary.pipeline
    .filter((component) => component.state !== 'ok')
    .map((component) => ({ subject: `pipeline:${component.component}`, problem: component.state, detail: `since ${component.since}: ${component.detail}` }));
  const hosts = summary.hostList.flatMap((host): Problem[] => {
    const found: Problem[] = [];
    const liveness = host.liveness;
    if (liveness !== null && liveness.state !== 'healthy') {
      found.push({ subject: host.host, problem: liveness.state, detail: `since ${liveness.since}: ${liveness.reason}` });
    }
    if (host.overdue) {
      const last = host.lastSync === null ? 'never synced' : `last sync started ${host.lastSync.startedAt}`;
      found.push({ subject: host.host, problem: 'overdue', detail: `${last} (limit ${Math.round(summary.overdueAfterMs / 1000)} s)` });
    }
    return found;
  });
  return [...pipeline, ...hosts];
}

export function formatProblems(problems: readonly Problem[]): string {
  if (problems.length === 0) return 'no problems: every enabled host is healthy and reporting';
  return renderTable(['subject', 'problem', 'detail'], problems.map((p) => [p.subject, p.problem, p.detail]));
}
