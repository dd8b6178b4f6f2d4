/**
 * Reads one host's domains from libvirt: list them all (that is the count the seed
 * compares), then each one's state from libvirt's state-filtered listings and its UUID,
 * with bounded concurrency (see domain-states.ts). The connection is opened lazily and
 * dropped on any failure, so the next tick reconnects.
 */
import { ConnectListAllDomainsFlags, type Domain, Hypervisor } from '@unraid/libvirt';
import { mapWithConcurrency } from '../../shared/concurrency.ts';
import { DependencyError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import { fromLibvirtState, PowerState } from '../../shared/power-state.ts';
import { collectStates, type DomainStates, type ListedDomain, statesFromLists } from './domain-states.ts';

export interface HypervisorSnapshot extends DomainStates {
  /** Every domain libvirt listed. */
  domainCount: number;
}

/** Each filter's list holds domains in exactly that state; OTHER's (NOSTATE, BLOCKED, SHUTDOWN, CRASHED, PMSUSPENDED) are read one by one. */
const STATE_FILTERS: ReadonlyArray<{ flag: ConnectListAllDomainsFlags; state: PowerState | undefined }> = [
  { flag: ConnectListAllDomainsFlags.RUNNING, state: PowerState.RUNNING },
  { flag: ConnectListAllDomainsFlags.PAUSED, state: PowerState.PAUSED },
  { flag: ConnectListAllDomainsFlags.SHUTOFF, state: PowerState.SHUTOFF },
  { flag: ConnectListAllDomainsFlags.OTHER, state: undefined },
];

export interface DomainReading {
  uuid: string;
  state: PowerState;
}

export interface HypervisorReader {
  read(): Promise<HypervisorSnapshot>;
  /** One domain by name (what lifecycle events carry); null if libvirt no longer knows it. */
  readDomain(name: string): Promise<DomainReading | null>;
  close(): Promise<void>;
}

export function createLibvirtReader(options: { uri: string; concurrency: number; log: Logger }): HypervisorReader {
  const log = options.log.child({ component: 'hypervisor-reader' });
  let connection: Promise<Hypervisor> | undefined;

  const connect = (): Promise<Hypervisor> => {
    connection ??= (async () => {
      const hypervisor = new Hypervisor({ uri: options.uri });
      await hypervisor.connectOpen();
      log.info({ uri: options.uri }, 'hypervisor connected');
      return hypervisor;
    })();
    return connection;
  };

  const disconnect = async (): Promise<void> => {
    const current = connection;
    connection = undefined;
    if (current === undefined) return;
    try {
      await (await current).connectClose();
    } catch {
      // Closing a connection that failed to open, or already broke, has nothing left to release.
    }
  };

  /** UUID, then state: two calls per domain, the way that holds whatever the domains do meanwhile. */
  const readOneByOne = (hypervisor: Hypervisor, domains: readonly Domain[]): Promise<ListedDomain[]> =>
    mapWithConcurrency(domains, options.concurrency, async (domain) => {
      // libvirt keeps the UUID in the domain handle: this asks the hypervisor nothing and cannot
      // fail for a domain that vanished after the listing, unlike getInfo.
      const uuid = (await hypervisor.domainGetUUIDString(domain)).toLowerCase();
      return { uuid, state: await readState(hypervisor, domain, uuid) };
    });

  const readState = async (hypervisor: Hypervisor, domain: Domain, uuid: string): Promise<ListedDomain['state']> => {
    try {
      const info = await hypervisor.domainGetInfo(domain);
      const state = fromLibvirtState(info.state);
      if (state !== undefined) return state;
      log.warn({ instanceUuid: uuid, libvirtState: info.state }, 'unknown libvirt domain state, domain skipped');
    } catch (err) {
      log.warn({ err, instanceUuid: uuid }, 'domain state unreadable, domain skipped this cycle');
    }
    return 'unreadable';
  };

  /** One listing per state filter: the state comes with the list, so only OTHER needs getInfo. */
  const readByStateLists = async (hypervisor: Hypervisor): Promise<ListedDomain[]> => {
    const lists = await Promise.all(STATE_FILTERS.map(({ flag }) => hypervisor.connectListAllDomains(flag)));
    const listed = STATE_FILTERS.flatMap(({ state }, i) => (lists[i] ?? []).map((domain) => ({ domain, state })));
    return mapWithConcurrency(listed, options.concurrency, async ({ domain, state }) => {
      const uuid = (await hypervisor.domainGetUUIDString(domain)).toLowerCase();
      return { uuid, state: state ?? (await readState(hypervisor, domain, uuid)) };
    });
  };

  return {
    async read() {
      try {
        const hypervisor = await connect();
        // The unfiltered listing is the count the seed compares, and the check on the state lists.
        const domains = await hypervisor.connectListAllDomains();
        let states = statesFromLists(domains.length, await readByStateLists(hypervisor));
        if (states === undefined) {
          log.debug({ domainCount: domains.length }, 'domains changed state while listed; reading each one');
          states = collectStates(await readOneByOne(hypervisor, domains));
        }
        return { domainCount: domains.length, ...states };
      } catch (err) {
        await disconnect();
        throw new DependencyError('hypervisor', `libvirt ${options.uri}: ${(err as Error).message}`, err);
      }
    },
    async readDomain(name) {
      let hypervisor: Hypervisor;
      try {
        hypervisor = await connect();
      } catch (err) {
        await disconnect();
        throw new DependencyError('hypervisor', `libvirt ${options.uri}: ${(err as Error).message}`, err);
      }
      try {
        const domain = await hypervisor.domainLookupByName(name);
        const uuid = (await hypervisor.domainGetUUIDString(domain)).toLowerCase();
        const state = fromLibvirtState((await hypervisor.domainGetInfo(domain)).state);
        return state === undefined ? null : { uuid, state };
      } catch (err) {
        // The bindings keep only libvirt's message; "Domain not found" is VIR_ERR_NO_DOMAIN.
        if (/domain not found/i.test((err as Error).message)) return null;
        await disconnect();
        throw new DependencyError('hypervisor', `libvirt ${options.uri}: ${(err as Error).message}`, err);
      }
    },
    close: disconnect,
  };
}
