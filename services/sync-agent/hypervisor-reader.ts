/**
 * Reads one host's domains from libvirt through virtsync's addon (native/libvirt-bulk):
 * the whole host in one virConnectGetAllDomainStats call, or one domain by name. A bulk
 * snapshot is consistent by construction, so it needs no check and no second way.
 *
 * The read-only connection is opened lazily and kept. A connection that libvirt reports
 * dead (libvirtd restarted since the last read) is replaced and the read retried once, so
 * a daemon restart between two ticks costs a reconnect, not a failed host sync. A read that
 * finds the daemon away (mid-restart) waits up to `reconnectWaitMs` for it to come back
 * (open-waiting-out-restart.ts), so a restart during a read costs a short wait.
 */
import { type BulkConnection, type HostDomains, openReadOnly } from '../../native/libvirt-bulk/index.ts';
import { coerceError, DependencyError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import { fromLibvirtState, type PowerState } from '../../shared/power-state.ts';
import { openWaitingOutRestart } from './open-waiting-out-restart.ts';

export interface DomainReading {
  uuid: string;
  state: PowerState;
  /** libvirt's reason for the state (virDomain<State>Reason), read with it. */
  reason: number;
}

export interface HypervisorSnapshot {
  /** Every domain libvirt listed. */
  domainCount: number;
  /** Domains whose state was read, by UUID. */
  states: Map<string, PowerState>;
  /** libvirt's reason for each of those states (virDomain<State>Reason), by UUID. */
  reasons: Map<string, number>;
  /** Domains listed in a state this virtsync does not know (a newer libvirt): neither drifted nor missing. */
  unreadable: Set<string>;
  /** A domain's UUID by its name (what lifecycle events carry); the index is built on first use. */
  uuidOfName(name: string): string | undefined;
}

export interface HypervisorReader {
  read(): Promise<HypervisorSnapshot>;
  /** One domain by name; null if libvirt no longer knows it. */
  readDomain(name: string): Promise<DomainReading | null>;
  close(): Promise<void>;
}

export function createLibvirtReader(options: {
  uri: string;
  /** How long a read waits for a daemon that is away (restarting) before it fails. */
  reconnectWaitMs: number;
  log: Logger;
  /** Tests only: read by listing + virDomainGetState, the way drivers without the bulk call are read. */
  byListing?: boolean;
}): HypervisorReader {
  const log = options.log.child({ component: 'hypervisor-reader' });
  let connection: Promise<BulkConnection> | undefined;

  const connect = async (): Promise<BulkConnection> => {
    const current = connection;
    if (current !== undefined) {
      const open = await current.catch(() => undefined);
      if (open?.isAlive()) return open;
      if (connection === current) connection = undefined;
      if (open !== undefined) void open.close();
    }
    connection ??= openWaitingOutRestart(() => openReadOnly(options.uri), { waitMs: options.reconnectWaitMs }).then(
      ({ opened, waitedMs }) => {
        if (waitedMs > 0) log.info({ uri: options.uri, waitedMs }, 'hypervisor connected once its daemon was back');
        else log.info({ uri: options.uri }, 'hypervisor connected');
        return opened;
      },
      (err: unknown) => {
        connection = undefined;
        throw err;
      },
    );
    return connection;
  };

  /** Runs `call` on a live connection; if it fails because the connection died, once more on a new one. */
  const withConnection = async <T>(call: (connection: BulkConnection) => Promise<T>): Promise<T> => {
    try {
      const open = await connect();
      try {
        return await call(open);
      } catch (err) {
        if (open.isAlive()) throw err;
        log.info({ uri: options.uri, reason: coerceError(err).message }, 'hypervisor connection was dead, reconnecting');
        return await call(await connect());
      }
    } catch (err) {
      throw new DependencyError('hypervisor', `libvirt ${options.uri}: ${coerceError(err).message}`, err);
    }
  };

  return {
    read: () => withConnection(async (open) => snapshotOf(await open.readAll({ byListing: options.byListing === true }), log)),
    async readDomain(name) {
      const record = await withConnection((open) => open.readByName(name));
      if (record === null) return null;
      const state = fromLibvirtState(record.state);
      if (state === undefined) log.warn({ domainName: name, libvirtState: record.state }, 'unknown libvirt domain state, domain skipped');
      return state === undefined ? null : { uuid: record.uuid, state, reason: record.reason };
    },
    async close() {
      const current = connection;
      connection = undefined;
      const open = await current?.catch(() => undefined);
      await open?.close();
    },
  };
}

function snapshotOf(domains: HostDomains, log: Logger): HypervisorSnapshot {
  // The addon formats UUIDs from libvirt's raw bytes: lower-case, as PostgreSQL prints them.
  const { uuids, names } = domains;
  const states = new Map<string, PowerState>();
  const reasons = new Map<string, number>();
  const unreadable = new Set<string>();
  for (let i = 0; i < uuids.length; i++) {
    const uuid = uuids[i] ?? '';
    const libvirtState = domains.states[i] ?? -1;
    const state = fromLibvirtState(libvirtState);
    if (state !== undefined) {
      states.set(uuid, state);
      reasons.set(uuid, domains.reasons[i] ?? 0);
    } else {
      unreadable.add(uuid);
      log.warn({ instanceUuid: uuid, libvirtState }, 'unknown libvirt domain state, domain skipped');
    }
  }
  let byName: Map<string, string> | undefined;
  return {
    domainCount: uuids.length,
    states,
    reasons,
    unreadable,
    uuidOfName(name) {
      byName ??= new Map(names.map((domainName, i) => [domainName, uuids[i] ?? '']));
      return byName.get(name);
    },
  };
}
