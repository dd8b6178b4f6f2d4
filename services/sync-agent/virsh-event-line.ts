/**
 * Parses one line of `virsh event --all --loop --timestamp`, e.g.
 *   2026-11-24 20:23:38.280+0000: event 'lifecycle' for domain 'vm-1': Suspended Paused
 * Only lifecycle events matter; anything else (other event kinds, the closing
 * "events received" line, noise) yields null rather than an error.
 */
export interface LifecycleEvent {
  at: Date;
  domainName: string;
  /** libvirt's virDomainEventType name: Defined, Undefined, Started, Suspended, Resumed, Stopped, Shutdown, PMSuspended, Crashed. */
  event: string;
  detail: string;
}

const LINE = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}\.\d{3})([+-]\d{2})(\d{2}): event 'lifecycle' for domain '(.+)': (\w+)(?: (\w+))?\s*$/;

export function parseVirshEventLine(line: string): LifecycleEvent | null {
  const match = LINE.exec(line);
  if (match === null) return null;
  const [, date, time, offsetHours, offsetMinutes, domainName, event, detail] = match;
  const at = new Date(`${date}T${time}${offsetHours}:${offsetMinutes}`);
  if (Number.isNaN(at.getTime()) || domainName === undefined || event === undefined) return null;
  return { at, domainName, event, detail: detail ?? '' };
}
