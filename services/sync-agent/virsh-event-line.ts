/**
 * Parses one line of `virsh event --all --loop --timestamp`, e.g.
 *   2026-11-24 20:23:38.280+0000: event 'lifecycle' for domain 'vm-1': Suspended Paused
 *   2026-11-24 20:23:38.280+0000: event 'lifecycle' for domain 'vm-1': Suspended I/O Error
 * The event is one word; its detail is the rest of the line and may hold several
 * (`Shutdown Finished after host request`, `Started Event wakeup`, `Post-copy Error`).
 * virsh translates both, so the watcher runs it with LC_ALL=C. Only lifecycle events
 * matter; anything else (other event kinds, the closing "events received" line, noise)
 * yields null rather than an error.
 */
export interface LifecycleEvent {
  at: Date;
  domainName: string;
  /** libvirt's virDomainEventType name: Defined, Undefined, Started, Suspended, Resumed, Stopped, Shutdown, PMSuspended, Crashed. */
  event: string;
  /** virsh's words for the event's detail, e.g. `Migrated`, `I/O Error`, `Finished after guest request`. */
  detail: string;
}

// The name is greedy: a domain name holding "': " still ends at the last one.
const LINE = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}\.\d{3})([+-]\d{2})(\d{2}): event 'lifecycle' for domain '(.+)': (\w+)(?: (.*?))?\s*$/;

export function parseVirshEventLine(line: string): LifecycleEvent | null {
  const match = LINE.exec(line);
  if (match === null) return null;
  const [, date, time, offsetHours, offsetMinutes, domainName, event, detail] = match;
  const at = new Date(`${date}T${time}${offsetHours}:${offsetMinutes}`);
  if (Number.isNaN(at.getTime()) || domainName === undefined || event === undefined) return null;
  return { at, domainName, event, detail: detail ?? '' };
}
