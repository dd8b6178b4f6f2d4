/** `virtsync policies`: the `rabbitmqctl set_policy` commands for the vhost in AMQP_URL (shared/bus/broker-policies.ts). */
import type { Command } from 'commander';
import { BROKER_POLICIES, setPolicyCommand } from '../../shared/bus/broker-policies.ts';
import type { CliContext } from './cli-context.ts';

export function registerPoliciesCommand(program: Command, context: CliContext): void {
  program
    .command('policies')
    .description('print the rabbitmqctl commands that apply virtsync\'s broker policies to the vhost of AMQP_URL (run them once per vhost)')
    .option('--json', 'the policies as JSON (for the management API or a definitions file)')
    .action((options: { json?: boolean }) => {
      const vhost = decodeURIComponent(new URL(context.config().amqpUrl).pathname.slice(1)) || '/';
      context.print(options.json === true ? JSON.stringify(BROKER_POLICIES, null, 2) : BROKER_POLICIES.map((policy) => setPolicyCommand(policy, vhost)).join('\n'));
    });
}
