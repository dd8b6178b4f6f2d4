/** What a demo run found, and the one verdict both demos (the simulated fleet and QEMU) give it. */
import os from 'node:os';
import type { SyncRule } from '../../shared/sync-rules.ts';
import type { Mismatch } from '../fleet/verify-fleet.ts';

export interface DemoSummary {
  hosts: number;
  instances: number;
  compared: number;
  hostsWithCountMismatch: number;
  unknownDomains: number;
  observationsPublished: number;
  /** Writer decisions per rule: what the fleet was built to produce, and what the writer decided. */
  rules: Array<{ rule: SyncRule; expected: number; found: number }>;
  rowsCommitted: number;
  eventsReceivedDownstream: number;
  auditRows: number;
  mismatches: Mismatch[];
  serviceExitCodes: Record<string, number | null>;
  timingsMs: { generate: number; cycle: number; commit: number; total: number };
  machine: { cores: number; memoryGiB: number };
  ok: boolean;
}

/**
 * The summary with the machine it ran on and its verdict: the database matches, nothing
 * invalid crossed the bus, every committed change was audited and reached downstream, every
 * rule decided as planned, and every service exited 0.
 */
export function concludeDemo(found: Omit<DemoSummary, 'machine' | 'ok'>, invalidMessages: number): DemoSummary {
  const ok =
    found.mismatches.length === 0 &&
    invalidMessages === 0 &&
    found.auditRows === found.rowsCommitted &&
    found.eventsReceivedDownstream === found.rowsCommitted &&
    found.rules.every((r) => r.expected === r.found) &&
    Object.values(found.serviceExitCodes).every((code) => code === 0);
  return { ...found, machine: { cores: os.cpus().length, memoryGiB: Math.round(os.totalmem() / 2 ** 30) }, ok };
}
