/**
 * The power-state model: libvirt's virDomainState codes plus Nova's FAILED and BUILDING.
 * `PowerState` is the one list: the message schemas, `isPowerState` and
 * `fromLibvirtState` derive from it.
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

// Object.entries forgets the key and value types of a constant it was given: restored here.
const NAMES = Object.fromEntries(
  Object.entries(PowerState).map(([name, code]) => [code, name]),
) as Record<PowerState, PowerStateName>;

export function isPowerState(value: unknown): value is PowerState {
  return POWER_STATES.some((state) => state === value);
}

/** Upper-case constant name, e.g. `SHUTOFF`. */
export function powerStateName(state: PowerState): PowerStateName {
  return NAMES[state];
}

/** Lower-case name used in routing keys, e.g. `shutoff` (unique, unlike the display names). */
export function powerStateKey(state: PowerState): string {
  return NAMES[state].toLowerCase();
}

/** libvirt reports NOSTATE..SUSPENDED (virDomainState 0..7); FAILED and BUILDING are Nova's own. */
const LIBVIRT_STATES: readonly PowerState[] = POWER_STATES.filter((state) => state !== PowerState.FAILED && state !== PowerState.BUILDING);

/** Anything outside virDomainState from a hypervisor is a bug or a newer libvirt: undefined. */
export function fromLibvirtState(code: number): PowerState | undefined {
  return LIBVIRT_STATES.find((state) => state === code);
}
