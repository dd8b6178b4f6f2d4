/**
 * CloudStack's "stopped unexpectedly": an instance the cloud had ACTIVE and RUNNING that the
 * hypervisor reports shut off or crashed. The `stopped` rule only fires with no operation of
 * the cloud in progress (task_state unset) and never for a migration (those are skipped), so
 * a stop the cloud asked for never counts.
 */
import type { ChangeEvent } from '../../shared/messages/change-event.ts';
import { PowerState } from '../../shared/power-state.ts';

const UNEXPECTED_AFTER: ReadonlySet<PowerState> = new Set([PowerState.SHUTOFF, PowerState.CRASHED]);

export function isUnexpectedStop(change: Pick<ChangeEvent, 'rule' | 'before' | 'after'>): boolean {
  return change.rule === 'stopped' && change.before.powerState === PowerState.RUNNING && UNEXPECTED_AFTER.has(change.after.powerState);
}
