/**
 * Spreads one cycle's ticks evenly over the interval instead of a burst: host i of n is
 * due at cycleStart + i·interval/n. Hosts are sorted so each keeps its slot from cycle
 * to cycle (exactly one interval between its ticks while the fleet does not change).
 */
export interface ScheduledTick {
  host: string;
  dueAtMs: number;
}

export function planCycle(hosts: readonly string[], intervalMs: number, cycleStartMs: number): ScheduledTick[] {
  const sorted = [...new Set(hosts)].sort();
  const spacingMs = sorted.length === 0 ? 0 : intervalMs / sorted.length;
  return sorted.map((host, index) => ({ host, dueAtMs: cycleStartMs + Math.floor(index * spacingMs) }));
}
