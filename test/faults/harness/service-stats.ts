/**
 * What a fault test learns from a service's JSON log lines: reconnects, committed
 * batches and their decisions, retries, dead-letters, audit duplicates, errors. Only
 * fixed log messages are matched (the operator's guide lists them), data comes from fields.
 */
export interface ServiceStats {
  lines: number;
  brokerConnects: number;
  brokerLost: number;
  /** state-writer: committed batches, the valid observations they decided, the changes they made. */
  batches: number;
  observations: number;
  changes: number;
  outcomes: Record<string, number>;
  /** Batches rolled back on a transient error and retried, with the error code (40P01 is a deadlock). */
  retries: Array<{ code: string | null; message: string }>;
  breakerOpened: number;
  deadLettered: number;
  /** audit-subscriber: change events written, rows actually inserted, duplicates skipped. */
  auditEvents: number;
  auditRecorded: number;
  auditDuplicates: number;
  /** sync-agent: host syncs finished. */
  hostsSynced: number;
  /** Messages logged at error or fatal level. */
  errors: string[];
}

export function emptyStats(): ServiceStats {
  return {
    lines: 0,
    brokerConnects: 0,
    brokerLost: 0,
    batches: 0,
    observations: 0,
    changes: 0,
    outcomes: {},
    retries: [],
    breakerOpened: 0,
    deadLettered: 0,
    auditEvents: 0,
    auditRecorded: 0,
    auditDuplicates: 0,
    hostsSynced: 0,
    errors: [],
  };
}

const num = (value: unknown): number => (typeof value === 'number' && Number.isFinite(value) ? value : 0);

/** pino's numeric levels: 50 error, 60 fatal. */
const ERROR_LEVEL = 50;

export function countLogLine(stats: ServiceStats, entry: Record<string, unknown>): void {
  stats.lines++;
  if (num(entry.level) >= ERROR_LEVEL) stats.errors.push(String(entry.msg));
  switch (entry.msg) {
    case 'broker connected':
      stats.brokerConnects++;
      break;
    case 'broker connection lost, reconnecting':
      stats.brokerLost++;
      break;
    case 'batch committed': {
      stats.batches++;
      stats.observations += num(entry.observations);
      stats.changes += num(entry.changes);
      const outcomes = entry.outcomes;
      if (typeof outcomes === 'object' && outcomes !== null) {
        for (const [rule, count] of Object.entries(outcomes)) stats.outcomes[rule] = (stats.outcomes[rule] ?? 0) + num(count);
      }
      break;
    }
    case 'batch rolled back, retrying': {
      const err = entry.err;
      const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
      const message = typeof err === 'object' && err !== null ? (err as { message?: unknown }).message : undefined;
      stats.retries.push({ code: typeof code === 'string' ? code : null, message: String(message) });
      break;
    }
    case 'circuit opened: calls fail fast until it is tested again':
      stats.breakerOpened++;
      break;
    case 'message rejected to the dead-letter queue':
      stats.deadLettered++;
      break;
    case 'audit entries recorded':
      stats.auditEvents += num(entry.events);
      stats.auditRecorded += num(entry.recorded);
      stats.auditDuplicates += num(entry.duplicates);
      break;
    case 'host synced':
      stats.hostsSynced++;
      break;
    default:
      break;
  }
}

export function sumStats(all: readonly ServiceStats[]): ServiceStats {
  const total = emptyStats();
  for (const stats of all) {
    for (const key of [
      'lines',
      'brokerConnects',
      'brokerLost',
      'batches',
      'observations',
      'changes',
      'breakerOpened',
      'deadLettered',
      'auditEvents',
      'auditRecorded',
      'auditDuplicates',
      'hostsSynced',
    ] as const) {
      total[key] += stats[key];
    }
    for (const [rule, count] of Object.entries(stats.outcomes)) total.outcomes[rule] = (total.outcomes[rule] ?? 0) + count;
    total.retries.push(...stats.retries);
    total.errors.push(...stats.errors);
  }
  return total;
}
