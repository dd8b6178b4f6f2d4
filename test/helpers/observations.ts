import { randomUUID } from 'node:crypto';
import { Exchange, observationRoutingKey, Queue } from '../../shared/bus/topology.ts';
import { groupObservations, type Observation } from '../../shared/messages/observation.ts';
import type { PowerState } from '../../shared/power-state.ts';
import type { LookOrder } from '../../shared/sync-rules.ts';
import type { VmState } from '../../shared/vm-state.ts';
import type { BusProbe } from './bus-probe.ts';

/** Publishes observations the way agents do, grouped into host observations messages; returns how many messages. */
export function publishObservations(probe: BusProbe, observations: readonly Observation[]): number {
  const messages = groupObservations(observations);
  for (const message of messages) probe.publish(Exchange.observations, observationRoutingKey(message.host), message);
  return messages.length;
}

/** Observations messages waiting for a writer, in both its queues (host syncs' and lifecycle events'). */
export async function observationsQueued(probe: BusProbe): Promise<number> {
  return (await probe.messageCount(Queue.stateWriter)) + (await probe.messageCount(Queue.stateWriterEvents));
}

/** The columns of an instance row an agent reads before it asks the hypervisor (a NewInstance or a selected row). */
export interface RowAsRead {
  uuid: string;
  host: string;
  power_state: PowerState;
  vm_state: VmState;
  task_state?: string | null;
}

/**
 * An observation as a current agent makes it: the row as the agent read it (`expected`,
 * filled from `row`, which is what the writer compares against), the look it belongs to,
 * and what the hypervisor said. The observing host is the row's unless overridden.
 */
export function observationOf(row: RowAsRead, powerState: PowerState | null, look: LookOrder, overrides: Partial<Observation> = {}): Observation {
  return {
    observationId: randomUUID(),
    instanceUuid: row.uuid,
    host: row.host,
    powerState,
    expected: { powerState: row.power_state, vmState: row.vm_state, taskState: row.task_state ?? null },
    look,
    observedAt: new Date().toISOString(),
    trigger: 'tick',
    tickId: null,
    ...overrides,
  };
}

/** Hands out looks of one agent process in order: `epoch` fixed, `seq` counting from 1 (as services/sync-agent/look-clock.ts does). */
export function lookSequence(epoch = 1): () => LookOrder {
  let seq = 0;
  return () => ({ epoch, seq: ++seq });
}
