/**
 * Parsers for commander arguments and options. Each throws commander's
 * InvalidArgumentError, so a bad value is reported with the option it came from and
 * the run exits 2.
 */
import { InvalidArgumentError } from 'commander';
import { hostNameSchema } from '../../shared/host-name.ts';
import { instanceUuidSchema } from '../../shared/messages/fields.ts';
import { POWER_STATES, type PowerState, powerStateKey } from '../../shared/power-state.ts';

/** Lower-case power-state names as they appear in routing keys: `running`, `shutoff`, … */
export const POWER_STATE_KEYS: readonly string[] = POWER_STATES.map(powerStateKey);

export function parseHostName(value: string): string {
  const result = hostNameSchema.safeParse(value);
  if (!result.success) throw new InvalidArgumentError(`${JSON.stringify(value)} is not a valid host name (letters, digits, '-', '_', dot-separated labels).`);
  return result.data;
}

/** For variadic host arguments: commander passes what was collected so far. */
export function collectHostName(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), parseHostName(value)];
}

export function parsePowerStateKey(value: string): PowerState {
  const index = POWER_STATE_KEYS.indexOf(value.toLowerCase());
  const state = POWER_STATES[index];
  if (state === undefined) throw new InvalidArgumentError(`${JSON.stringify(value)} is not a power state; one of: ${POWER_STATE_KEYS.join(', ')}.`);
  return state;
}

export function parseInstanceUuid(value: string): string {
  const result = instanceUuidSchema.safeParse(value);
  if (!result.success) throw new InvalidArgumentError(`${JSON.stringify(value)} is not an instance UUID (8-4-4-4-12 hex digits).`);
  return result.data;
}

/** A whole number within [min, max]; returns a parser for commander. */
export function wholeNumber(min: number, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value) => {
    const parsed = Number(value);
    if (value.trim() === '' || !Number.isInteger(parsed) || parsed < min || parsed > max) {
      throw new InvalidArgumentError(`${JSON.stringify(value)} is not a whole number from ${min} to ${max === Number.MAX_SAFE_INTEGER ? 'any' : max}.`);
    }
    return parsed;
  };
}

/** A share from 0 to 1. */
export function parseRatio(value: string): number {
  const ratio = Number(value);
  if (value.trim() === '' || !(ratio >= 0 && ratio <= 1)) throw new InvalidArgumentError(`${JSON.stringify(value)} is not a number from 0 to 1.`);
  return ratio;
}

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration with its unit (`90s`, `20m`, `2h`; a bare number is seconds), in milliseconds. */
export function parseDurationMs(value: string): number {
  const match = /^\s*(\d+)\s*(ms|s|m|min|h|d)?\s*$/.exec(value);
  const amount = Number(match?.[1]);
  if (match === null || !(amount > 0)) throw new InvalidArgumentError(`${JSON.stringify(value)} is not a duration: a whole number with a unit, e.g. 90s, 20m, 2h (a bare number is seconds).`);
  return amount * (DURATION_UNITS_MS[match[2] ?? 's'] ?? 1_000);
}
