/**
 * Scenario 7 (issue 14), an event storm: DOMAINS running domains of one host destroyed at
 * once, behind the cloud's back; how long after the burst the last change is committed,
 * minus the debounce, and how many are never committed.
 *
 * On a libvirtd of the bench's own (test+unix:///default on its own socket, real lifecycle
 * events; the shared daemon is not filled with a thousand domains), DOMAINS domains are
 * defined and started, their rows on one host. The sync agent (lifecycle events on, the
 * default EVENT_DEBOUNCE_MS of 1 s) and the state writer run as processes, as deployed.
 * One probe domain is paused first, until its change commits: the event path is live.
 * Then every domain is destroyed through a second connection, one call after another,
 * and the change events on virtsync.changes are counted; the writer's committedAt stamps
 * date the last commit. The observations on virtsync.observations, tapped too, date the
 * agent's part (event-storm-agent-s) apart from the writer's. The agent's CPU over the storm is read from /proc.
 *
 *   npm run bench:event-storm
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { type Domain, Hypervisor } from '@unraid/libvirt';
import { eventObservationRoutingKey, Exchange, observationRoutingKey, Queue, tickQueue } from '../shared/bus/topology.ts';
import { changeEventSchema } from '../shared/messages/change-event.ts';
import { parseMessage } from '../shared/messages/codec.ts';
import { hostObservationsSchema } from '../shared/messages/observation.ts';
import { PowerState } from '../shared/power-state.ts';
import { startPrivateLibvirtd } from '../tools/local-env/private-libvirtd.ts';
import { waitFor } from '../tools/wait-for.ts';
import { tapBus } from './lib/bus-tap.ts';
import { runBench } from './lib/harness.ts';
import { cpuSecondsOf } from './lib/proc-stats.ts';
import { createBenchDatabase, createBenchVhost } from './lib/resources.ts';
import { type BenchService, startBenchService } from './lib/service-processes.ts';
import { fmt } from './lib/stats.ts';
import { waitForConsumers } from './lib/wait-for-consumers.ts';

const DOMAINS = 1_000;
const EVENT_DEBOUNCE_MS = 1_000;
const COMMIT_TIMEOUT_MS = 60_000;
const TARGET_S = 0.5;
const LOG_DIR = path.resolve('var/bench/event-storm/logs');

const domainXml = (name: string, uuid: string): string =>
  `<domain type="test"><name>${name}</name><uuid>${uuid}</uuid><memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>`;

await runBench(
  {
    name: 'event-storm',
    deadlineMs: 300_000,
    inputs: { domains: DOMAINS, EVENT_DEBOUNCE_MS: `${EVENT_DEBOUNCE_MS} (default)`, libvirt: 'test+unix:///default on a libvirtd of its own', services: 'sync-agent and state-writer as processes' },
  },
  async (context) => {
    const daemon = await startPrivateLibvirtd();
    context.defer('stop the private libvirtd', () => daemon.remove());
    const { db, url: databaseUrl } = await createBenchDatabase(context, 'event_storm');
    const { amqpUrl } = await createBenchVhost(context);
    await rm(LOG_DIR, { recursive: true, force: true });
    await mkdir(LOG_DIR, { recursive: true });

    const suffix = randomBytes(3).toString('hex');
    const host = `bench-storm-${suffix}`;
    const hypervisor = new Hypervisor({ uri: daemon.uri });
    await hypervisor.connectOpen();
    context.defer('close libvirt connection', () => hypervisor.connectClose());
    const domains: Array<{ uuid: string; domain: Domain }> = [];
    for (let i = 0; i <= DOMAINS; i++) {
      const uuid = randomUUID();
      const domain = await hypervisor.domainDefineXML(domainXml(`storm-${suffix}-${i}`, uuid));
      await hypervisor.domainCreate(domain);
      domains.push({ uuid, domain });
    }
    const probe = domains.pop();
    if (probe === undefined) throw new Error('no probe domain');
    await db
      .insertInto('instances')
      .values([...domains, probe].map((d) => ({ uuid: d.uuid, host, power_state: PowerState.RUNNING, vm_state: 'active' as const })))
      .execute();
    context.progress(`defined and started ${DOMAINS} domains (+1 probe) on ${daemon.uri}, rows on ${host}`);

    const tap = await tapBus(amqpUrl, [
      { exchange: Exchange.changes, pattern: 'instance.#' },
      // Lifecycle events' observations travel under their own key (the writer's event queue); ticks' under the other.
      { exchange: Exchange.observations, pattern: eventObservationRoutingKey(host) },
      { exchange: Exchange.observations, pattern: observationRoutingKey(host) },
    ]);
    context.defer('close bus tap', () => tap.close());
    const wanted = new Set(domains.map((d) => d.uuid));
    const committed = new Map<string, number>();
    /** When each domain's SHUTOFF observation reached this process: the agent's part, apart from the writer's. */
    const observed = new Map<string, number>();
    let probeCommitted = false;
    tap.onMessage((message) => {
      const observations = parseMessage(hostObservationsSchema, message.content);
      if (observations.ok) {
        for (const o of observations.value.observations) if (wanted.has(o.instanceUuid) && o.powerState === PowerState.SHUTOFF) observed.set(o.instanceUuid, message.wallAt);
        return;
      }
      const parsed = parseMessage(changeEventSchema, message.content);
      if (!parsed.ok) return;
      const change = parsed.value;
      if (change.instanceUuid === probe.uuid && change.after.powerState === PowerState.PAUSED) probeCommitted = true;
      if (wanted.has(change.instanceUuid) && change.after.powerState === PowerState.SHUTOFF) committed.set(change.instanceUuid, Date.parse(change.committedAt));
    });

    const baseEnv = { DATABASE_URL: databaseUrl, AMQP_URL: amqpUrl, LOG_LEVEL: 'info' };
    const services: BenchService[] = [
      startBenchService(context, { service: 'state-writer', env: baseEnv, logDir: LOG_DIR }),
      startBenchService(context, {
        service: 'sync-agent',
        env: { ...baseEnv, AGENT_HOSTS: host, LIBVIRT_URI: daemon.uri, AGENT_LIFECYCLE_EVENTS: 'true', EVENT_DEBOUNCE_MS: String(EVENT_DEBOUNCE_MS) },
        logDir: LOG_DIR,
      }),
    ];
    await Promise.all(services.map((service) => service.waitForLog('service started', (entry) => entry.msg === 'service started', 60_000)));
    await waitForConsumers(amqpUrl, [Queue.stateWriter, tickQueue(host)], 30_000);
    // The watcher (virsh event) may need a moment to register: pause the probe until its change commits.
    await hypervisor.domainSuspend(probe.domain);
    await waitFor('the probe change to commit', () => probeCommitted, { timeoutMs: 30_000, intervalMs: 20 });
    context.progress('event path live; destroying every domain');

    const agentPid = services[1]?.pid();
    const agentCpu0 = agentPid === undefined ? undefined : cpuSecondsOf(agentPid);
    const burstStarted = Date.now();
    for (const { domain } of domains) await hypervisor.domainDestroy(domain);
    const burstEnded = Date.now();
    await waitFor('every change to commit', () => committed.size === DOMAINS, { timeoutMs: COMMIT_TIMEOUT_MS, intervalMs: 20 }).catch(() => undefined);
    const agentCpu1 = agentPid === undefined ? undefined : cpuSecondsOf(agentPid);
    const lost = DOMAINS - committed.size;
    const lastCommit = Math.max(...committed.values());
    const stormS = (lastCommit - burstEnded - EVENT_DEBOUNCE_MS) / 1000;
    const agentS = (Math.max(...observed.values()) - burstEnded - EVENT_DEBOUNCE_MS) / 1000;
    for (const service of services) await service.stop();

    console.log(`burst: ${DOMAINS} destroys in ${fmt((burstEnded - burstStarted) / 1000, 2)} s`);
    console.log(`observed by the agent: ${observed.size} of ${DOMAINS}; last observation published ${fmt(agentS, 2)} s after the burst ended plus the debounce`);
    console.log(`committed: ${committed.size} of ${DOMAINS}; last commit ${fmt((lastCommit - burstEnded) / 1000, 2)} s after the burst ended, debounce ${EVENT_DEBOUNCE_MS} ms`);
    if (agentCpu0 !== undefined && agentCpu1 !== undefined) console.log(`agent CPU over the storm: ${fmt(agentCpu1 - agentCpu0, 2)} s`);
    console.log(`target: <= ${TARGET_S} s and lost 0: ${stormS <= TARGET_S && lost === 0 ? 'met' : 'NOT met'}\n`);
    context.result('event-storm-1000-s', stormS, 's');
    context.result('event-storm-lost', lost, 'changes');
    context.result('event-storm-agent-s', agentS, 's');
    if (agentCpu0 !== undefined && agentCpu1 !== undefined) context.result('event-storm-agent-cpu-s', agentCpu1 - agentCpu0, 's');
  },
);
