/**
 * Listens on `virtsync.reports` for what the agents say about some hosts: each host sync's
 * report and, if asked, the unknown domains it found. Bound before the ticks are published,
 * on an exclusive queue of its own, so nothing the sync reports is missed.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { ConsumeMessage } from 'amqplib';
import { declareCoreTopology, Exchange, reportRoutingKey, unknownDomainRoutingKey } from '../../shared/bus/topology.ts';
import { parseMessage } from '../../shared/messages/codec.ts';
import { type HostReport, hostReportSchema } from '../../shared/messages/host-report.ts';
import { type UnknownDomain, unknownDomainSchema } from '../../shared/messages/unknown-domain.ts';
import type { Tick } from '../../shared/messages/tick.ts';
import type { CliContext } from './cli-context.ts';

/** Above this many hosts, bind to every host's messages and filter here instead. */
const MAX_HOST_BINDINGS = 100;

export interface ReportListener {
  /** Unknown domains received so far (when asked for), in arrival order. */
  readonly unknownDomains: readonly UnknownDomain[];
  /** Each tick's report, or undefined for those still missing at the deadline. */
  waitForReports(ticks: readonly Tick[], timeoutMs: number): Promise<Map<Tick, HostReport | undefined>>;
  close(): Promise<void>;
}

export async function listenForReports(context: CliContext, hosts: readonly string[], options: { unknownDomains: boolean }): Promise<ReportListener> {
  const bus = await context.bus();
  const wanted = new Set(hosts);
  const reports = new Map<string, HostReport>();
  const unknownDomains: UnknownDomain[] = [];
  const keys = options.unknownDomains ? [reportRoutingKey, unknownDomainRoutingKey] : [reportRoutingKey];
  const everyHost = options.unknownDomains ? ['report.#', 'unknown.#'] : ['report.#'];
  const bindings = hosts.length > MAX_HOST_BINDINGS ? everyHost : hosts.flatMap((host) => keys.map((key) => key(host)));

  const onMessage = (message: ConsumeMessage | null): void => {
    if (message === null) return;
    if (message.fields.routingKey.startsWith('unknown.')) {
      const parsed = parseMessage(unknownDomainSchema, message.content);
      if (parsed.ok && wanted.has(parsed.value.host)) unknownDomains.push(parsed.value);
      return;
    }
    const parsed = parseMessage(hostReportSchema, message.content);
    if (parsed.ok && parsed.value.tickId !== null && wanted.has(parsed.value.host)) reports.set(parsed.value.tickId, parsed.value);
  };
  let queue = '';
  const channel = bus.createChannel({
    name: 'cli.reports',
    setup: async (ch: Parameters<typeof declareCoreTopology>[0]) => {
      await declareCoreTopology(ch);
      queue = (await ch.assertQueue('', { exclusive: true, autoDelete: true })).queue;
      for (const pattern of bindings) await ch.bindQueue(queue, Exchange.reports, pattern);
      await ch.consume(queue, onMessage, { noAck: true });
    },
  });
  const setupFailed = new Promise<never>((_resolve, reject) => {
    channel.once('error', (err: unknown) => reject(new Error('could not listen for host reports', { cause: err })));
  });
  await Promise.race([channel.waitForConnect(), setupFailed]);

  return {
    unknownDomains,
    async waitForReports(ticks, timeoutMs) {
      // Missing reports at the deadline are an answer (timed out), not an error.
      const deadline = Date.now() + timeoutMs;
      while (!ticks.every((tick) => reports.has(tick.tickId)) && Date.now() < deadline) await sleep(100);
      return new Map(ticks.map((tick) => [tick, reports.get(tick.tickId)]));
    },
    close: () => channel.close(),
  };
}
