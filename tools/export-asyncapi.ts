/**
 * `npm run asyncapi`: writes docs/asyncapi.yaml, the event contracts as an AsyncAPI 3
 * document for downstream teams, generated from the zod schemas (each payload is the
 * contract's JSON Schema, draft-07, as a producer must send it) and the bus topology (the
 * exchange, its type and the routing key of each). A unit test validates it with
 * @asyncapi/parser and fails when it is out of date.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { z } from 'zod';
import packageJson from '../package.json' with { type: 'json' };
import { Exchange } from '../shared/bus/topology.ts';
import { CONTRACTS } from '../shared/messages/contracts.ts';
import { livenessStateSchema } from '../shared/messages/host-liveness.ts';
import { POWER_STATES, powerStateKey } from '../shared/power-state.ts';

export const ASYNCAPI_FILE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../docs/asyncapi.yaml');

type ContractName = keyof typeof CONTRACTS;

interface ChannelSpec {
  contract: ContractName;
  exchange: { name: string; type: 'direct' | 'topic' };
  address: string;
  description: string;
  producer: string;
  /** The publish operation's name when the contract has more than one channel (default: the contract's). */
  operation?: string;
}

const CHANNELS: Record<string, ChannelSpec> = {
  ticks: {
    contract: 'tick',
    exchange: { name: Exchange.ticks, type: 'direct' },
    address: '{host}',
    description: "One per compute host per interval (and per `virtsync sync`): the host's agent syncs it. Internal; queue `virtsync.tick.<host>` keeps only the newest.",
    producer: 'tick-producer',
  },
  observations: {
    contract: 'host-observations',
    exchange: { name: Exchange.observations, type: 'topic' },
    address: 'observation.{host}',
    description:
      'What one host sync found that disagrees with the rows (`trigger: tick`; agents before the event queue also sent lifecycle events\' here). Internal; consumed by the state writer (queue `virtsync.state-writer`).',
    producer: 'sync-agent',
  },
  eventObservations: {
    contract: 'host-observations',
    exchange: { name: Exchange.observations, type: 'topic' },
    address: 'event-observation.{host}',
    description:
      "What one lifecycle event's look found (`trigger: event`). Internal; consumed by the state writer from its own queue (`virtsync.state-writer.events`), before any host sync's observations waiting, so that an event never waits behind a cycle's backlog.",
    producer: 'sync-agent',
    operation: 'event-observations',
  },
  hostReports: {
    contract: 'host-report',
    exchange: { name: Exchange.reports, type: 'topic' },
    address: 'report.{host}',
    description: 'One per host sync: what was compared and found, or why the sync failed. Bind your own queue to `report.#` to follow every host.',
    producer: 'sync-agent',
  },
  unknownDomains: {
    contract: 'unknown-domain',
    exchange: { name: Exchange.reports, type: 'topic' },
    address: 'unknown.{host}',
    description: 'A domain a hypervisor runs that no instances row places on that host. Reported, never written.',
    producer: 'sync-agent',
  },
  hostLiveness: {
    contract: 'host-liveness',
    exchange: { name: Exchange.reports, type: 'topic' },
    address: 'host.{host}.{liveness}',
    description: "A host's liveness changed (healthy, failing, unreachable), published by the tick producer's leader after it is stored, at least once (dedupe on `transitionId`). Bind e.g. `host.#` or `host.*.unreachable`.",
    producer: 'tick-producer',
  },
  changes: {
    contract: 'change-event',
    exchange: { name: Exchange.changes, type: 'topic' },
    address: 'instance.{host}.{powerState}',
    description:
      'Every change virtsync committed to `instances`, after the commit, at least once (dedupe on `eventId`). Bind your own queue, e.g. `instance.*.shutoff` or `instance.<host>.#` (not `#`: the exchange also carries proposals).',
    producer: 'state-writer',
  },
  proposals: {
    contract: 'proposed-change',
    exchange: { name: Exchange.changes, type: 'topic' },
    address: 'proposed.{host}.{powerState}',
    description:
      'Only from a writer in report-only mode (`WRITER_MODE=report-only`): a change it decided on and did NOT write to `instances` (`before` is the row as it is, `after` what the writer would have left), once per drift, at least once (dedupe on `eventId`). Never a change of the table: no `instance.#` binding receives it. `virtsync tail --proposed` follows them.',
    producer: 'state-writer',
  },
};

const PARAMETERS = {
  host: { description: 'The compute host, as one routing word: dots become `_` (`cmp-1.dc1` → `cmp-1_dc1`); the tick exchange (direct) uses the name as is.' },
  powerState: { description: 'The new power state, by lower-case name.', enum: POWER_STATES.map(powerStateKey) },
  liveness: { description: "The host's new liveness.", enum: [...livenessStateSchema.options] },
};

function payloadOf(contract: ContractName): unknown {
  // What a producer must send (before our own normalising transforms), in the draft AsyncAPI's schema format reads.
  return z.toJSONSchema(CONTRACTS[contract], { io: 'input', target: 'draft-7' });
}

export function renderAsyncApi(): string {
  const channels = Object.fromEntries(
    Object.entries(CHANNELS).map(([id, spec]) => {
      const parameters = Object.fromEntries(Object.entries(PARAMETERS).filter(([name]) => spec.address.includes(`{${name}}`)));
      return [
        id,
        {
          address: spec.address,
          description: spec.description,
          ...(Object.keys(parameters).length > 0 ? { parameters } : {}),
          messages: { [spec.contract]: { $ref: `#/components/messages/${spec.contract}` } },
          bindings: { amqp: { is: 'routingKey', exchange: { name: spec.exchange.name, type: spec.exchange.type, durable: true, autoDelete: false, vhost: '/' }, bindingVersion: '0.3.0' } },
        },
      ];
    }),
  );
  const operations = Object.fromEntries(
    Object.entries(CHANNELS).map(([id, spec]) => [
      `publish-${spec.operation ?? spec.contract}`,
      {
        action: 'send',
        summary: `The ${spec.producer} publishes ${spec.contract} messages.`,
        channel: { $ref: `#/channels/${id}` },
        messages: [{ $ref: `#/channels/${id}/messages/${spec.contract}` }],
        bindings: { amqp: { deliveryMode: 2, mandatory: false, bindingVersion: '0.3.0' } },
      },
    ]),
  );
  const messages = Object.fromEntries(
    (Object.keys(CONTRACTS) as ContractName[]).map((contract) => [
      contract,
      {
        name: contract,
        title: contract,
        contentType: 'application/json',
        summary: `The ${contract} contract (schemaVersion 1); see docs/messages.md.`,
        payload: payloadOf(contract),
        bindings: { amqp: { messageType: contract, bindingVersion: '0.3.0' } },
      },
    ]),
  );
  const document = {
    asyncapi: '3.0.0',
    info: {
      title: 'virtsync events',
      version: packageJson.version,
      description:
        'The messages virtsync publishes on RabbitMQ. Generated by `npm run asyncapi` from the zod schemas in shared/messages/ and the topology in shared/bus/topology.ts: do not edit. Every message is persistent JSON with `message-id` and `type` (the contract name) set; consumers ignore fields they do not know.',
    },
    defaultContentType: 'application/json',
    servers: { rabbitmq: { host: 'rabbitmq.example:5672', protocol: 'amqp', protocolVersion: '0.9.1', description: 'Your broker; virtsync uses the vhost of its AMQP_URL.' } },
    channels,
    operations,
    components: { messages },
  };
  return `# Generated by \`npm run asyncapi\`: do not edit.\n${stringify(document, { lineWidth: 0, aliasDuplicateObjects: false })}`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await writeFile(ASYNCAPI_FILE, renderAsyncApi());
  process.stdout.write(`wrote ${path.relative(process.cwd(), ASYNCAPI_FILE)}\n`);
}
