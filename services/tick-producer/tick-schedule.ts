/**
 * When each host is ticked. A host's slot is a fixed point in every interval,
 * `k·interval + offset(host)`, with the offset a hash of the host name: every producer
 * computes the same schedule, so a standby that takes over simply continues it (no host
 * ticked twice in a row, none skipped more than once), and adding or removing a host
 * moves no other host's slot. Hashing spreads hosts over the interval instead of a burst.
 */
export interface ScheduledTick {
  host: string;
  dueAtMs: number;
  /** Which interval since the epoch the slot is in: the tick's cycle number. */
  cycle: number;
}

/** FNV-1a, 32 bit: stable across processes and releases, which is all this needs. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export function slotOffsetMs(host: string, intervalMs: number): number {
  return hash(host) % intervalMs;
}

/** Every slot in [fromMs, toMs), in time order. */
export function planSlots(hosts: readonly string[], intervalMs: number, fromMs: number, toMs: number): ScheduledTick[] {
  const slots: ScheduledTick[] = [];
  for (const host of new Set(hosts)) {
    const offset = slotOffsetMs(host, intervalMs);
    let cycle = Math.floor((fromMs - offset) / intervalMs);
    for (let dueAtMs = cycle * intervalMs + offset; dueAtMs < toMs; cycle++, dueAtMs += intervalMs) {
      if (dueAtMs >= fromMs) slots.push({ host, dueAtMs, cycle });
    }
  }
  return slots.sort((a, b) => a.dueAtMs - b.dueAtMs || a.host.localeCompare(b.host));
}

/** The cycle of the host's latest slot at or before `atMs`. */
export function cycleAt(host: string, intervalMs: number, atMs: number): number {
  return Math.floor((atMs - slotOffsetMs(host, intervalMs)) / intervalMs);
}

/** How often a leader re-reads the host list: new, enabled and disabled hosts count within this. */
export function hostRefreshMs(intervalMs: number): number {
  return Math.min(intervalMs, 5_000);
}
