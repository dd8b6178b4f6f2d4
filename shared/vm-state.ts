/**
 * What the cloud believes a VM is doing (Nova's vm_states). The sync rules only ever
 * read ACTIVE and MIGRATING and only ever write ACTIVE and SHUTOFF; the other values
 * are the cloud's, kept so the table can be validated.
 */
export const VmState = {
  ACTIVE: 'active',
  BUILDING: 'building',
  PAUSED: 'paused',
  SUSPENDED: 'suspended',
  SHUTOFF: 'shutoff',
  STOPPED: 'stopped',
  RESCUED: 'rescued',
  RESIZED: 'resized',
  MIGRATING: 'migrating',
  SOFT_DELETED: 'soft-delete',
  DELETED: 'deleted',
  ERROR: 'error',
} as const;

export type VmState = (typeof VmState)[keyof typeof VmState];

export const VM_STATES: readonly VmState[] = Object.values(VmState);

export function isVmState(value: unknown): value is VmState {
  return VM_STATES.some((state) => state === value);
}
