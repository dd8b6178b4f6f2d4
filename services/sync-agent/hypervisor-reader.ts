/**
 * Reads one host's domains from libvirt: list them all (that is the count the seed
 * compares), then UUID and state of each with bounded concurrency. The connection is
 * opened lazily and dropped on any failure, so the next tick reconnects.
 */
import { Hypervisor } from '@unraid/libvirt';
import { mapWithConcurrency } from '../../shared/concurrency.ts';
import { DependencyError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import { fromLibvirtState, type PowerState } from '../../shared/power-state.ts';

export interface HypervisorSnapshot {
  /** Every domain libvirt listed. */
  domainCount: number;
  /** Domains whose state was read, by UUID. */
  states: Map<string, PowerState>;
  /** Domains listed but whose state could not be read: neither drifted nor missing this time. */
  unreadable: Set<string>;
}

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

  return {
    async read() {
      try {
        const hypervisor = await connect();
        const domains = await hypervisor.connectListAllDomains();
        const states = new Map<string, PowerState>();
        const unreadable = new Set<string>();
        await mapWithConcurrency(domains, options.concurrency, async (domain) => {
          // libvirt keeps the UUID in the domain handle: this asks the hypervisor nothing and cannot
          // fail for a domain that vanished after the listing, unlike getInfo below.
          const uuid = (await hypervisor.domainGetUUIDString(domain)).toLowerCase();
          try {
            const info = await hypervisor.domainGetInfo(domain);
            const state = fromLibvirtState(info.state);
            if (state === undefined) {
              log.warn({ instanceUuid: uuid, libvirtState: info.state }, 'unknown libvirt domain state, domain skipped');
              unreadable.add(uuid);
            } else {
              states.set(uuid, state);
            }
          } catch (err) {
            log.warn({ err, instanceUuid: uuid }, 'domain state unreadable, domain skipped this cycle');
            unreadable.add(uuid);
          }
        });
        return { domainCount: domains.length, states, unreadable };
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
