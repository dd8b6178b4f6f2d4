/**
 * The lifecycle-event latency measurement both event-latency benches share: domains with
 * unique names defined and started on the shared libvirtd, their rows on one host, and a
 * downstream tap on virtsync.changes. `change(i)` suspends or resumes domain i (round-robin)
 * through a second libvirt connection and waits for the matching change event; a domain is
 * changed again only once its previous change has arrived, so the debounce never merges two.
 * Latency per change: the libvirt call returning → the change event arriving here. The stamps
 * inside the event (observedAt by the agent, committedAt by the writer) split it into
 * detect + debounce, write, and relay.
 */
import { randomBytes } from 'node:crypto';
import type { Domain } from '@unraid/libvirt';
import type { Kysely } from 'kysely';
import { Exchange } from '../../shared/bus/topology.ts';
import type { Database } from '../../shared/db/database.ts';
import { changeEventSchema } from '../../shared/messages/change-event.ts';
import { parseMessage } from '../../shared/messages/codec.ts';
import { PowerState } from '../../shared/power-state.ts';
import { ensureLibvirtd, LIBVIRTD_URI, openDaemonDomains } from '../../tools/local-env/libvirtd.ts';
import { waitFor } from '../../tools/wait-for.ts';
import { tapBus, type Tapped } from './bus-tap.ts';
import type { BenchContext } from './harness.ts';
import { fmt, max, median, percentile } from './stats.ts';
import { printTable } from './table.ts';

export interface EventSample {
  latencyMs: number;
  /** libvirt call returned → agent stamped its observation (event delivery + debounce + lookup). */
  detectMs: number;
  /** observation stamped → writer's commit time (bus, queue wait, batch linger, transaction). */
  writeMs: number;
  /** commit → event arrived here (the writer publishes right after its commit; broker delivery). */
  relayMs: number;
  /** performance.now() when the libvirt call returned. */
  changedAt: number;
}

export interface EventLatencyProbe {
  /** The host the domains' rows are on: the one host the event agent serves. */
  host: string;
  /** One change, waited for; undefined if no event arrives within timeoutMs. */
  change(index: number): Promise<EventSample | undefined>;
  /** Changes domain 0 until an event comes through (the watcher may need a moment to register), then `warmUp` more. */
  warmUp(changes: number): Promise<void>;
  /** Puts every domain back to running, so removing them at cleanup starts from a known state. */
  resumeAll(): Promise<void>;
}

interface ProbeDomain {
  uuid: string;
  domain: Domain;
  running: boolean;
  /** The domain's last change, settled: the next one starts after it. */
  previous: Promise<unknown>;
}

interface Pending {
  expected: PowerState;
  at: number;
  wallAt: number;
  resolve: (sample: EventSample) => void;
}

export async function startEventLatencyProbe(
  context: BenchContext,
  options: { db: Kysely<Database>; amqpUrl: string; domains: number; timeoutMs: number },
): Promise<EventLatencyProbe> {
  await ensureLibvirtd();
  const suffix = randomBytes(3).toString('hex');
  const host = `bench-events-${suffix}`;
  const daemon = await openDaemonDomains();
  context.defer('close libvirt connection', () => daemon.close());
  context.defer('remove the domains', () => daemon.removeAll());
  const domains: ProbeDomain[] = [];
  for (let i = 0; i < options.domains; i++) {
    const name = `vsbench-${suffix}-${String(i).padStart(2, '0')}`;
    const uuid = await daemon.start(name);
    domains.push({ uuid, domain: await daemon.hypervisor.domainLookupByName(name), running: true, previous: Promise.resolve() });
  }
  await options.db
    .insertInto('instances')
    .values(domains.map((d) => ({ uuid: d.uuid, host, power_state: PowerState.RUNNING, vm_state: 'active' as const })))
    .execute();
  context.progress(`defined and started ${options.domains} domains on ${LIBVIRTD_URI}, rows on ${host}`);

  const tap = await tapBus(options.amqpUrl, [{ exchange: Exchange.changes, pattern: 'instance.#' }]);
  context.defer('close event tap', () => tap.close());
  const pending = new Map<string, Pending>();
  tap.onMessage((message: Tapped) => {
    const parsed = parseMessage(changeEventSchema, message.content);
    if (!parsed.ok) return;
    const change = parsed.value;
    const wanted = pending.get(change.instanceUuid);
    if (wanted === undefined || change.after.powerState !== wanted.expected) return;
    pending.delete(change.instanceUuid);
    const observedAt = Date.parse(change.observedAt);
    const committedAt = Date.parse(change.committedAt);
    wanted.resolve({
      latencyMs: message.at - wanted.at,
      detectMs: observedAt - wanted.wallAt,
      writeMs: committedAt - observedAt,
      relayMs: message.wallAt - committedAt,
      changedAt: wanted.at,
    });
  });

  /** Suspends or resumes one domain and waits for its event. */
  const changeNow = async (target: ProbeDomain): Promise<EventSample | undefined> => {
    const expected = target.running ? PowerState.PAUSED : PowerState.RUNNING;
    if (target.running) await daemon.hypervisor.domainSuspend(target.domain);
    else await daemon.hypervisor.domainResume(target.domain);
    target.running = !target.running;
    const arrived = new Promise<EventSample>((resolve) => {
      pending.set(target.uuid, { expected, at: performance.now(), wallAt: Date.now(), resolve });
    });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => {
        pending.delete(target.uuid);
        resolve(undefined);
      }, options.timeoutMs);
    });
    const sample = await Promise.race([arrived, timedOut]);
    clearTimeout(timer);
    return sample;
  };

  // One change per domain at a time, in call order: a domain is changed again only once its previous change has arrived (or timed out).
  const change = (index: number): Promise<EventSample | undefined> => {
    const target = domains[index % domains.length];
    if (target === undefined) throw new Error('no such domain');
    const turn = target.previous.then(() => changeNow(target));
    target.previous = turn.catch(() => undefined);
    return turn;
  };

  return {
    host,
    change,
    async warmUp(changes) {
      await waitFor('the lifecycle event path to deliver a change', async () => (await change(0)) !== undefined, { timeoutMs: 30_000, intervalMs: 100 });
      for (let i = 1; i <= changes; i++) await change(i);
    },
    async resumeAll() {
      for (const d of domains) if (!d.running) await daemon.hypervisor.domainResume(d.domain).catch(() => undefined);
    },
  };
}

/** The stages of the samples as a table: end to end, its three parts, and end to end minus the debounce. */
export function printEventLatencyTable(title: string, samples: readonly EventSample[], debounceMs: number): void {
  const row = (label: string, values: number[]): string[] => [
    label,
    `${fmt(median(values), 0)} ms`,
    `${fmt(percentile(values, 90), 0)} ms`,
    `${fmt(percentile(values, 99), 0)} ms`,
    `${fmt(max(values), 0)} ms`,
  ];
  printTable(
    title,
    ['stage', 'p50', 'p90', 'p99', 'max'],
    [
      row('end to end', samples.map((s) => s.latencyMs)),
      row('  detect + debounce (to observedAt)', samples.map((s) => s.detectMs)),
      row('  observation to commit', samples.map((s) => s.writeMs)),
      row('  commit to event received', samples.map((s) => s.relayMs)),
      row('end to end minus the debounce', samples.map((s) => s.latencyMs - debounceMs)),
    ],
  );
}
