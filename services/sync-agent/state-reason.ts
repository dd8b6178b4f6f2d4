/**
 * libvirt's reason for a domain's state, for the few observations that need it: a PAUSED or
 * SHUTOFF domain whose row is MIGRATING may be libvirt's own passing state of a live
 * migration (`paused (migrating)`, `paused (starting up)`, `shut off (migrated)`), which the
 * writer must not write (see TRANSITION_REASONS in shared/sync-rules.ts). The reader does
 * not hand reasons on (its bulk read receives them: taking them from there would make this
 * module unnecessary), so it is one `virsh domstate --reason` call, made only for those.
 *
 * The reason is read after the state, and a migrating domain moves on fast: when virsh no
 * longer reports the state that was read (or cannot read the domain at all, it left), the
 * reading is outdated and must not be published; the next look decides.
 */
import type { Logger } from '../../shared/logging.ts';
import { coerceError } from '../../shared/errors.ts';
import { PowerState } from '../../shared/power-state.ts';
import { runVirsh } from '../../shared/virsh.ts';
import { VmState } from '../../shared/vm-state.ts';

/** The reason (empty if virsh gave none), or null when the reading is outdated. */
export type StateReasonReader = (host: string, uuid: string, state: PowerState) => Promise<string | null>;

/** virsh's words for the states that need a reason. */
const STATE_WORDS: ReadonlyMap<PowerState, string> = new Map([
  [PowerState.PAUSED, 'paused'],
  [PowerState.SHUTOFF, 'shut off'],
]);

export function needsStateReason(row: { vmState: VmState }, state: PowerState): boolean {
  return row.vmState === VmState.MIGRATING && STATE_WORDS.has(state);
}

/** What an observation carries of the reason: `{}` when none is needed, `{ reason }` when read, null when the reading turned out outdated. */
export async function stateReasonFields(
  reasonFor: StateReasonReader,
  host: string,
  uuid: string,
  row: { vmState: VmState },
  state: PowerState | null,
): Promise<{ reason?: string } | null> {
  if (state === null || !needsStateReason(row, state)) return {};
  const reason = await reasonFor(host, uuid, state);
  return reason === null ? null : { reason };
}

/** `paused (migrating)` → { state: 'paused', reason: 'migrating' }. */
export function parseDomstate(output: string): { state: string; reason: string } {
  const text = output.trim();
  const match = /^(.*?)\s*\(([^)]*)\)$/.exec(text);
  return match === null ? { state: text, reason: '' } : { state: match[1] ?? '', reason: match[2] ?? '' };
}

export function createStateReasonReader(options: { uriOf: (host: string) => string; timeoutMs: number; log: Logger }): StateReasonReader {
  const log = options.log.child({ component: 'state-reason' });
  return async (host, uuid, state) => {
    let output: string;
    try {
      output = await runVirsh(options.uriOf(host), ['domstate', '--reason', uuid], { timeoutMs: options.timeoutMs });
    } catch (err) {
      log.info({ err: coerceError(err), host, instanceUuid: uuid }, 'domain state reason unreadable, reading not published');
      return null;
    }
    const now = parseDomstate(output);
    if (now.state !== STATE_WORDS.get(state)) {
      log.info({ host, instanceUuid: uuid, read: STATE_WORDS.get(state), now: now.state }, 'domain changed state before its reason was read, reading not published');
      return null;
    }
    return now.reason;
  };
}
