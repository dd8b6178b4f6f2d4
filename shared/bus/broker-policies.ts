/**
 * What virtsync asks of the broker beyond its queue declarations: policies, which an operator
 * applies once per vhost (`virtsync policies` prints the commands) and can change later
 * without recreating a queue, unlike queue arguments (406 PRECONDITION_FAILED).
 *
 * The only one: host reports are bounded. Only the newest report per host matters, so a long
 * outage of the audit subscriber drops the oldest ones (drop-head) instead of piling up; they
 * are dropped, not dead-lettered (the queue has no dead-letter exchange), so the dead-letter
 * queue holds only real rejects. Writer and audit queues get no policy on purpose: no delivery
 * limit, no dead-lettering by the broker (see shared/bus/topology.ts).
 */
import { Queue } from './topology.ts';

export interface BrokerPolicy {
  name: string;
  pattern: string;
  applyTo: 'queues';
  priority: number;
  definition: Record<string, string | number>;
}

export const HOST_REPORTS_MAX_LENGTH = 100_000;

export const BROKER_POLICIES: readonly BrokerPolicy[] = [
  {
    name: 'virtsync-host-reports',
    pattern: `^${Queue.hostReports.replaceAll('.', '\\.')}$`,
    applyTo: 'queues',
    priority: 10,
    definition: { 'max-length': HOST_REPORTS_MAX_LENGTH, overflow: 'drop-head' },
  },
];

function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** The `rabbitmqctl set_policy` line that applies `policy` to `vhost`. */
export function setPolicyCommand(policy: BrokerPolicy, vhost: string): string {
  return [
    'rabbitmqctl set_policy',
    `-p ${shellQuote(vhost)}`,
    `--apply-to ${policy.applyTo}`,
    `--priority ${policy.priority}`,
    shellQuote(policy.name),
    shellQuote(policy.pattern),
    shellQuote(JSON.stringify(policy.definition)),
  ].join(' ');
}
