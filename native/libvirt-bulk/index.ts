/**
 * The typed face of virtsync's libvirt addon (src/libvirt_bulk.cc, built by `npm ci`
 * through the root `install` script): a read-only connection that reads every domain's
 * state in one libvirt call, or one domain by name. What the addon hands back is checked
 * here, at the boundary between C++ and TypeScript.
 */
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import { z } from 'zod';

/** The libvirt error codes the callers decide on (virErrorNumber). */
export const LibvirtErrorCode = {
  NO_SUPPORT: 3,
  SYSTEM_ERROR: 38,
  NO_DOMAIN: 42,
} as const;

/** The libvirt error domains the callers decide on (virErrorDomain). */
export const LibvirtErrorDomain = {
  /** The remote driver's transport: the client's side of the daemon's socket. */
  RPC: 7,
} as const;

/** Every domain of a host, as columns: index i of each is one domain. */
export interface HostDomains {
  uuids: string[];
  names: string[];
  /** virDomainState */
  states: Int32Array;
  /** the state's reason (virDomainRunningReason, virDomainShutoffReason, ...) */
  reasons: Int32Array;
}

export interface DomainRecord {
  uuid: string;
  name: string;
  state: number;
  reason: number;
}

export interface BulkConnection {
  /**
   * Every domain, active or not, in one virConnectGetAllDomainStats call; on a driver
   * without it (or with `byListing`, for tests), a listing and one virDomainGetState each.
   */
  readAll(options?: { byListing?: boolean }): Promise<HostDomains>;
  /** One domain by name; null when libvirt does not know it. */
  readByName(name: string): Promise<DomainRecord | null>;
  /** False once a call found the connection broken (asks the daemon nothing). */
  isAlive(): boolean;
  /** Safe twice; reads in flight keep their own reference and finish. */
  close(): Promise<void>;
}

const hostDomainsSchema = z.object({
  uuids: z.array(z.string()),
  names: z.array(z.string()),
  states: z.instanceof(Int32Array),
  reasons: z.instanceof(Int32Array),
});
const domainRecordSchema = z.object({ uuid: z.string(), name: z.string(), state: z.number().int(), reason: z.number().int() });

const nativeMethod = z.custom<(...args: unknown[]) => unknown>((value) => typeof value === 'function');
const nativeConnectionSchema = z.object({ readAll: nativeMethod, readByName: nativeMethod, isAlive: nativeMethod, close: nativeMethod });
const addonSchema = z.object({ open: nativeMethod });

const addon = addonSchema.parse(createRequire(import.meta.url)('./build/Release/virtsync_libvirt_bulk.node'));

/** A number the addon set on an error it rejected with. */
function errorNumber(err: unknown, field: 'libvirtCode' | 'libvirtDomain' | 'libvirtErrno'): number | undefined {
  if (typeof err !== 'object' || err === null || !(field in err)) return undefined;
  const value: unknown = Reflect.get(err, field);
  return typeof value === 'number' ? value : undefined;
}

/** libvirt's error number on an error the addon rejected with, if it is one. */
export function libvirtErrorCode(err: unknown): number | undefined {
  return errorNumber(err, 'libvirtCode');
}

/** The socket's errnos when nothing listens: the file is gone, or it is there and nobody accepts. */
const NO_LISTENER_ERRNOS: ReadonlySet<number> = new Set([constants.errno.ENOENT, constants.errno.ECONNREFUSED]);

/**
 * The daemon is not there to connect to ("Failed to connect socket to '…': No such file or
 * directory" / "Connection refused"), as for a second or two while it restarts; unlike a
 * daemon that answers with an error, or one that does not answer at all.
 */
export function isDaemonAway(err: unknown): boolean {
  return (
    errorNumber(err, 'libvirtCode') === LibvirtErrorCode.SYSTEM_ERROR &&
    errorNumber(err, 'libvirtDomain') === LibvirtErrorDomain.RPC &&
    NO_LISTENER_ERRNOS.has(errorNumber(err, 'libvirtErrno') ?? 0)
  );
}

/** Opens `uri` read-only (off the event loop). Rejects with libvirt's message and `libvirtCode`. */
export async function openReadOnly(uri: string): Promise<BulkConnection> {
  const native: unknown = await addon.open(uri);
  // The methods live on the native object's prototype: call them on it, not on the parsed copy.
  const methods = nativeConnectionSchema.parse(native);
  return {
    readAll: async (options) => hostDomainsSchema.parse(await methods.readAll.call(native, options?.byListing === true)),
    readByName: async (name) => domainRecordSchema.nullable().parse(await methods.readByName.call(native, name)),
    isAlive: () => z.boolean().parse(methods.isAlive.call(native)),
    close: async () => {
      await methods.close.call(native);
    },
  };
}
