/** Valid change events as the writer publishes them, for tests that feed a consumer directly. */
import { randomUUID } from 'node:crypto';
import { changeRoutingKey } from '../../shared/bus/topology.ts';
import type { ChangeEvent } from '../../shared/messages/change-event.ts';
import { PowerState } from '../../shared/power-state.ts';
import { VmState } from '../../shared/vm-state.ts';

export function changeEventFor(host: string, overrides: Partial<ChangeEvent> = {}): ChangeEvent {
  return {
    schemaVersion: 1,
    eventId: randomUUID(),
    instanceUuid: randomUUID(),
    host,
    rule: 'stopped',
    before: { powerState: PowerState.RUNNING, vmState: VmState.ACTIVE },
    after: { powerState: PowerState.SHUTOFF, vmState: VmState.SHUTOFF },
    observationId: randomUUID(),
    observedAt: new Date(Date.now() - 1_000).toISOString(),
    committedAt: new Date().toISOString(),
    ...overrides,
  };
}

export function routingKeyOf(event: ChangeEvent): string {
  return changeRoutingKey(event.host, event.after.powerState);
}
