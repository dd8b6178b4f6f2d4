/**
 * `virtsync hosts add|remove <host>`: a compute host's identities, all at once and safe to
 * re-run. add: registers the host, declares its tick queue, creates its broker user with its
 * permissions and topic permissions (management API), and its database login mapped to the
 * host; then prints what the host's agent needs. remove: revokes all of it and disables the
 * host (its instances and history stay). Runs with the operator's identities.
 */
import { Argument, type Command } from 'commander';
import { brokerUrls } from '../../shared/bus/broker-urls.ts';
import { declareTickQueue, tickQueue } from '../../shared/bus/topology.ts';
import { createBrokerManagement } from '../provisioning/broker-management.ts';
import { grantHostBrokerIdentity, revokeHostBrokerIdentity } from '../provisioning/host-broker-identity.ts';
import { grantHostDatabaseLogin, revokeHostDatabaseLogin } from '../provisioning/host-database-login.ts';
import { parseHostName } from './argument-parsers.ts';
import { withOperatorChannel } from './bus-command.ts';
import type { CliContext } from './cli-context.ts';
import { describeTarget } from './cli-errors.ts';

export function registerHostsCommand(program: Command, context: CliContext): void {
  const hosts = program.command('hosts').description("manage compute hosts' identities on the bus and in the database");
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
