/**
 * `virtsync hosts list|enable|disable|add|remove`: the compute hosts virtsync ticks
 * (compute_hosts), without SQL by hand. Enabling or disabling needs a database user that may
 * update compute_hosts (the schema owner); `virtsync_reader` may only list. add registers a
 * host, declares its tick queue, creates its broker user with its permissions and topic
 * permissions (management API) and its database login mapped to the host, then prints what
 * the host's agent needs; remove revokes all of it and disables the host (its instances and
 * history stay). add and remove run with the operator's identities and are safe to re-run.
 */
import { Argument, type Command } from 'commander';
import { setHostsEnabled } from '../../shared/db/compute-hosts.ts';
import { listLastHostSyncs, listRegisteredHosts, readDatabaseNow } from '../../shared/db/fleet-status.ts';
import { brokerUrls } from '../../shared/bus/broker-urls.ts';
import { declareTickQueue, tickQueue } from '../../shared/bus/topology.ts';
import { createBrokerManagement } from '../provisioning/broker-management.ts';
import { grantHostBrokerIdentity, revokeHostBrokerIdentity } from '../provisioning/host-broker-identity.ts';
import { grantHostDatabaseLogin, revokeHostDatabaseLogin } from '../provisioning/host-database-login.ts';
import { collectHostName, parseHostName } from './argument-parsers.ts';
import { withOperatorChannel } from './bus-command.ts';
import type { CliContext } from './cli-context.ts';
import { describeTarget, NotFoundError } from './cli-errors.ts';
import { formatAge, renderTable } from './text-table.ts';

export function registerHostsCommand(program: Command, context: CliContext): void {
  const hosts = program
    .command('hosts')
    .description("the compute hosts virtsync ticks (compute_hosts): list them, enable or disable their periodic sync, add or remove a host's identities");

  hosts
    .command('list')
    .description('every registered host: enabled or not, and its last sync report')
    .option('--json', 'print the hosts as JSON')
    .action(async (options: { json?: boolean }) => {
      const db = await context.database();
      const [now, registered, lastSyncs] = [await readDatabaseNow(db), await listRegisteredHosts(db), await listLastHostSyncs(db)];
      const last = new Map(lastSyncs.map((sync) => [sync.host, sync]));
      const rows = registered.map(({ host, enabled }) => {
        const sync = last.get(host);
        return { host, enabled, lastOutcome: sync?.outcome ?? null, lastStartedAt: sync?.startedAt.toISOString() ?? null, lastError: sync?.error ?? null };
      });
      if (options.json === true) return context.print(JSON.stringify(rows, null, 2));
      if (rows.length === 0) return context.print('no hosts in compute_hosts');
      context.print(
        renderTable(
          ['HOST', 'ENABLED', 'LAST SYNC', 'OUTCOME', 'ERROR'],
          rows.map((row) => [
            row.host,
            row.enabled ? 'yes' : 'no',
            row.lastStartedAt === null ? 'never' : formatAge(now.getTime() - Date.parse(row.lastStartedAt)),
            row.lastOutcome ?? '-',
            row.lastError ?? '',
          ]),
        ),
      );
    });

  for (const enabled of [true, false]) {
    const verb = enabled ? 'enable' : 'disable';
    hosts
      .command(verb)
      .description(enabled ? 'tick these hosts every interval again' : 'stop ticking these hosts (a manual `virtsync sync` still works)')
      .addArgument(new Argument('<host...>', 'compute host names, as in compute_hosts').argParser(collectHostName))
      .action(async (names: string[]) => {
        const unique = [...new Set(names)];
        const changed = await setHostsEnabled(await context.database(), unique, enabled);
        for (const host of changed) context.print(`${host} ${verb}d`);
        const missing = unique.filter((host) => !changed.includes(host));
        if (missing.length > 0) throw new NotFoundError(`not in compute_hosts: ${missing.join(', ')}`);
      });
  }

  hosts
    .command('add')
    .description('register a host and create its agent identities (broker user, permissions, database login); idempotent')
    .addArgument(new Argument('<host>', 'compute host name; also the CN of its agent certificate').argParser(parseHostName))
    .action(async (host: string) => {
      const vhost = vhostOf(context.config().amqpUrl);
      const login = await grantHostDatabaseLogin(await context.database(), host);
      await withOperatorChannel(context, (channel) => declareTickQueue(channel, host));
      await grantHostBrokerIdentity(createBrokerManagement(context.provisioning().managementUrl), vhost, host);
      context.print(
        [
          `host ${host} added`,
          `  agent certificate: CN=${host}, signed by the CA the broker and the database trust`,
          `  broker user:       ${host} (certificate login) in vhost ${vhost}, consumes ${tickQueue(host)}`,
          `  database login:    ${login} (certificate login), reads ${host}'s instances only`,
          '  agent environment: AGENT_HOSTS, AMQP_URL=amqps://<broker>/<vhost>, AMQP_CA_FILE, AMQP_CERT_FILE, AMQP_KEY_FILE,',
          `                     DATABASE_URL=postgres://${encodeURIComponent(login)}@<server>/<database>, DATABASE_CA_FILE, DATABASE_CERT_FILE, DATABASE_KEY_FILE,`,
          '                     BUS_TOPOLOGY=verify',
        ].join('\n'),
      );
    });
  hosts
    .command('remove')
    .description("revoke a host's identities, delete its tick queue and disable it (its instances stay); idempotent")
    .addArgument(new Argument('<host>', 'compute host name').argParser(parseHostName))
    .action(async (host: string) => {
      await revokeHostBrokerIdentity(createBrokerManagement(context.provisioning().managementUrl), host);
      await withOperatorChannel(context, async (channel) => {
        await channel.deleteQueue(tickQueue(host));
      });
      await revokeHostDatabaseLogin(await context.database(), host);
      context.print(`host ${host} removed: broker user, tick queue and database login revoked at ${describeTarget(context.config().amqpUrl)}`);
    });
}

/** The vhost of an AMQP URL: its path, `/` when empty. */
function vhostOf(amqpUrl: string): string {
  const path = decodeURIComponent(new URL(brokerUrls(amqpUrl)[0] ?? amqpUrl).pathname.slice(1));
  return path === '' ? '/' : path;
}
