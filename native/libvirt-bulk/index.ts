/**
 * The typed face of virtsync's libvirt addon (src/libvirt_bulk.cc, built by `npm ci`
 * through the root `install` script): a read-only connection that reads every domain's
 * state in one libvirt call, or one domain by name. What the addon hands back is checked
 * here, at the boundary between C++ and TypeScript.
 */
import { createRequire } from 'node:module';
import { z } from 'zod';

/** The libvirt error codes the callers decide on (virErrorNumber). */
export const LibvirtErrorCode = {
  NO_SUPPORT: 3,
  NO_DOMAIN: 42,
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

/** libvirt's error number on an error the addon rejected with, if it is one. */
export function libvirtErrorCode(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null || !('libvirtCode' in err)) return undefined;
  return typeof err.libvirtCode === 'number' ? err.libvirtCode : undefined;
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
