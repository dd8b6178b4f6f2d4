/**
 * Putting a host's domain states together from libvirt's state-filtered listings.
 *
 * `virConnectListAllDomains` can filter by state (RUNNING, PAUSED, SHUTOFF, and OTHER for
 * the rest), so a domain's list already tells its state: the reader then asks libvirt one
 * thing per domain (its UUID) instead of two (UUID and state). The lists are separate calls,
 * though, so a domain changing state in between can show up in two lists or in none. This
 * module decides when the lists can be trusted: every UUID once, and as many as the
 * unfiltered listing counted. Otherwise the caller reads each domain's state itself.
 */
import type { PowerState } from '../../shared/power-state.ts';

/** A listed domain, by UUID, with its state, or `unreadable` when libvirt could not say. */
export interface ListedDomain {
  uuid: string;
  state: PowerState | 'unreadable';
}

export interface DomainStates {
  /** Domains whose state was read, by UUID. */
  states: Map<string, PowerState>;
  /** Domains listed but whose state could not be read: neither drifted nor missing this time. */
  unreadable: Set<string>;
}

/** The states, or `undefined` when the lists disagree with the unfiltered count or with each other. */
export function statesFromLists(listedCount: number, domains: readonly ListedDomain[]): DomainStates | undefined {
  if (domains.length !== listedCount) return undefined;
  if (new Set(domains.map((domain) => domain.uuid)).size !== listedCount) return undefined;
  return collectStates(domains);
}

export function collectStates(domains: readonly ListedDomain[]): DomainStates {
  const states = new Map<string, PowerState>();
  const unreadable = new Set<string>();
  for (const { uuid, state } of domains) {
    if (state === 'unreadable') unreadable.add(uuid);
    else states.set(uuid, state);
  }
  return { states, unreadable };
}
