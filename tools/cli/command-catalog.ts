/**
 * Every `virtsync` command: its name, the line `virtsync --help` shows for it, and how to
 * load it. A command's module (and the database and broker clients it pulls in, ~0.3 s of
 * imports) is loaded only when that command runs, so `--help` and argument errors stay fast.
 */
import type { Command } from 'commander';
import type { CliContext } from './cli-context.ts';

export type RegisterCommand = (program: Command, context: CliContext) => void;

export interface CommandEntry {
  name: string;
  summary: string;
  load(): Promise<RegisterCommand>;
}

export const COMMANDS: readonly CommandEntry[] = [
  { name: 'status', summary: 'fleet summary: hosts, instances per state, hosts overdue', load: async () => (await import('./status-command.ts')).registerStatusCommand },
  { name: 'hosts', summary: "list compute hosts; enable or disable their periodic sync; add or remove a host's identities", load: async () => (await import('./hosts-command.ts')).registerHostsCommand },
  { name: 'unknown', summary: 'domains the hypervisors run that no instances row places', load: async () => (await import('./unknown-command.ts')).registerUnknownCommand },
  { name: 'sync', summary: 'sync hosts now (--wait: until each host reports)', load: async () => (await import('./sync-command.ts')).registerSyncCommand },
  { name: 'tail', summary: 'follow committed changes, or proposals (--proposed)', load: async () => (await import('./tail-command.ts')).registerTailCommand },
  { name: 'history', summary: "one instance's audit trail", load: async () => (await import('./history-command.ts')).registerHistoryCommand },
  { name: 'migrate', summary: 'run the database migrations', load: async () => (await import('./migrate-command.ts')).registerMigrateCommand },
  { name: 'dlq', summary: 'list and replay the dead-letter queue', load: async () => (await import('./dlq-command.ts')).registerDlqCommand },
  { name: 'bus', summary: "declare virtsync's exchanges and queues with the operator's identity (bus setup)", load: async () => (await import('./bus-command.ts')).registerBusCommand },
  { name: 'policies', summary: "print the broker policies' rabbitmqctl commands", load: async () => (await import('./policies-command.ts')).registerPoliciesCommand },
  { name: 'fleet', summary: 'generate a simulated fleet', load: async () => (await import('./fleet-command.ts')).registerFleetCommand },
];

/**
 * The command the arguments name: the first word that is not an option (the program's own
 * options, --verbose, --help, --version, take no value), or the one after `help`.
 */
export function chosenCommand(args: readonly string[]): CommandEntry | undefined {
  const words = args.filter((arg) => !arg.startsWith('-'));
  const word = words[0] === 'help' ? words[1] : words[0];
  return COMMANDS.find((entry) => entry.name === word);
}
