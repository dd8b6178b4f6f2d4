/**
 * The power-state model: libvirt's virDomainState codes plus Nova's FAILED and BUILDING,
 * with the display names of the seed's _STATE_MAP.
 */
export const PowerState = {
  NOSTATE: 0,
  RUNNING: 1,
  BLOCKED: 2,
  PAUSED: 3,
  SHUTDOWN: 4,
  SHUTOFF: 5,
  CRASHED: 6,
  /** libvirt's VIR_DOMAIN_PMSUSPENDED */
  SUSPENDED: 7,
  FAILED: 8,
  BUILDING: 9,
} as const;

export type PowerState = (typeof PowerState)[keyof typeof PowerState];
export type PowerStateName = keyof typeof PowerState;

export const POWER_STATES: readonly PowerState[] = Object.values(PowerState);

const NAMES = Object.fromEntries(
  Object.entries(PowerState).map(([name, code]) => [code, name]),
) as Record<PowerState, PowerStateName>;

/** The seed's _STATE_MAP: what a person is shown. */
const DISPLAY_NAMES: Record<PowerState, string> = {
  [PowerState.NOSTATE]: 'pending',
  [PowerState.RUNNING]: 'running',
  [PowerState.BLOCKED]: 'blocked',
  [PowerState.PAUSED]: 'paused',
  [PowerState.SHUTDOWN]: 'shutdown',
  [PowerState.SHUTOFF]: 'shutdown',
  [PowerState.CRASHED]: 'crashed',
  [PowerState.SUSPENDED]: 'suspended',
  [PowerState.FAILED]: 'failed to spawn',
  [PowerState.BUILDING]: 'building',
};

export function isPowerState(value: unknown): value is PowerState {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 9;
}

/** Upper-case constant name, e.g. `SHUTOFF`. */
export function powerStateName(state: PowerState): PowerStateName {
  return NAMES[state];
}

/** Lower-case name used in routing keys, e.g. `shutoff` (unique, unlike the display names). */
export function powerStateKey(state: PowerState): string {
  return NAMES[state].toLowerCase();
}

export function powerStateDisplayName(state: PowerState): string {
  return DISPLAY_NAMES[state];
}

/** libvirt reports 0..7 (virDomainState); anything else from a hypervisor is a bug or a newer libvirt. */
export function fromLibvirtState(code: number): PowerState | undefined {
  return Number.isInteger(code) && code >= 0 && code <= 7 ? (code as PowerState) : undefined;
}
