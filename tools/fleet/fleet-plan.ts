/**
 * A simulated fleet, decided before anything is written: hosts, their instances, and
 * each instance's scenario. Deterministic for a seed; the first host gets every drift
 * scenario once so that every branch is exercised at any fleet size.
 */
import { randomUUID } from 'node:crypto';
import { DRIFT, IN_SYNC, type Scenario } from './scenarios.ts';
import { seededRandom } from './seeded-random.ts';

export interface PlannedInstance {
  uuid: string;
  /** The host the row names when the fleet is created (and whose hypervisor runs the domain, if any). */
  host: string;
  scenario: Scenario;
  /** For `migrate-away`: where the instance ends up (its domain runs there). */
  destination: string | null;
}

export interface FleetPlan {
  hosts: string[];
  instances: PlannedInstance[];
}

export interface FleetOptions {
  hosts: number;
  minVmsPerHost: number;
  maxVmsPerHost: number;
  /** Share of instances given a drift scenario. */
  driftRatio: number;
  seed: number;
  hostPrefix: string;
}

export const DEFAULT_FLEET: FleetOptions = {
  hosts: 24,
  minVmsPerHost: 50,
  maxVmsPerHost: 100,
  driftRatio: 0.2,
  seed: 1,
  hostPrefix: 'sim-host',
};

export function planFleet(options: FleetOptions): FleetPlan {
  const random = seededRandom(options.seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const hosts = Array.from({ length: options.hosts }, (_, i) => `${options.hostPrefix}-${String(i + 1).padStart(4, '0')}`);
  const instances: PlannedInstance[] = [];
  hosts.forEach((host, hostIndex) => {
    const span = options.maxVmsPerHost - options.minVmsPerHost + 1;
    const count = options.minVmsPerHost + Math.floor(random() * span);
    for (let i = 0; i < count; i++) {
      const scenario = hostIndex === 0 && i < DRIFT.length ? (DRIFT[i] as Scenario) : random() < options.driftRatio ? pick(DRIFT) : pick(IN_SYNC);
      const destination = scenario.race === 'migrate-away' ? (hosts[(hostIndex + 1) % hosts.length] as string) : null;
      instances.push({ uuid: randomUUID(), host, scenario, destination });
    }
  });
  return { hosts, instances };
}

