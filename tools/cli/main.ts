/**
 * `virtsync`, the operator's CLI: wiring only; each command lives in its own module.
 * Run it as `npx virtsync …` (bin/virtsync.js), `npm run cli -- …`, or
 * `node --import tsx tools/cli/main.ts …`. Configuration: DATABASE_URL and AMQP_URL.
 */
import { Command, CommanderError } from 'commander';
import packageJson from '../../package.json' with { type: 'json' };
import { ConfigError, errorCode } from '../../shared/errors.ts';
import type { CliContext } from './cli-context.ts';
import { ExitCode, exitCodeFor, FailedError, NotFoundError, ProblemsFoundError, reasonOf, RefusedError, UnreachableError, UsageError } from './cli-errors.ts';
import { chosenCommand, COMMANDS } from './command-catalog.ts';

const EXIT_CODES = `
Environment:
  DATABASE_URL  PostgreSQL (default postgres://postgres@127.0.0.1:5432/virtsync)
  AMQP_URL      RabbitMQ, vhost included (default amqp://guest:guest@127.0.0.1:5672/)

Exit codes:
  0  done
  1  failed, or nothing found (history of an unknown instance)
  2  bad arguments or configuration
  3  the database or the broker could not be reached
  4  the database or the broker refused the login (user, password, role, database, vhost)`;

const program = new Command('virtsync')
  .description('keeps the instances table in sync with libvirt: look at the fleet, trigger syncs, follow changes')
  .version(packageJson.version)
  .option('--verbose', 'log connections, retries and migrations to stderr')
  // Commander's own errors (unknown command, bad option) are thrown, not exited on, so they map to exit 2 below.
  .exitOverride()
  .showHelpAfterError('(add --help for usage)')
  .addHelpText('after', EXIT_CODES);

let commandName = 'virtsync';
program.hook('preAction', (_program, actionCommand) => {
  // `virtsync hosts disable`, not `virtsync disable`.
  const names: string[] = [];
  for (let command: Command | null = actionCommand; command?.parent != null; command = command.parent) names.unshift(command.name());
  commandName = `virtsync ${names.join(' ')}`;
});

// Only the chosen command is loaded with its clients; the others are listed for --help.
const chosen = chosenCommand(process.argv.slice(2));
let context: CliContext | undefined;
if (chosen === undefined) {
  for (const entry of COMMANDS) program.command(entry.name).summary(entry.summary);
} else {
  const { createCliContext } = await import('./cli-context.ts');
  context = createCliContext({ env: process.env, verbose: () => program.opts<{ verbose?: boolean }>().verbose === true });
  (await chosen.load())(program, context);
  program.commands.find((command) => command.name() === chosen.name)?.summary(chosen.summary);
}

let exitCode: number = ExitCode.ok;
try {
  await program.parseAsync(process.argv);
} catch (err) {
  exitCode = exitCodeFor(err);
  // Commander has already printed its own message (or the help).
  if (!(err instanceof CommanderError)) process.stderr.write(`${commandName}: ${describeFailure(err)}\n`);
  if (program.opts<{ verbose?: boolean }>().verbose === true && err instanceof Error) process.stderr.write(`${err.stack ?? ''}\n`);
} finally {
  await context?.close().catch((err: unknown) => process.stderr.write(`${commandName}: closing connections failed: ${reasonOf(err)}\n`));
}
process.exitCode = exitCode;
// A pool still trying to reach an unreachable server must not keep a script waiting.
setTimeout(() => process.exit(exitCode), 2_000).unref();

/** One line: what failed and, for an unexpected error, its first cause; a hint where there is an obvious one. */
function describeFailure(err: unknown): string {
  if (err instanceof UsageError || err instanceof NotFoundError || err instanceof FailedError || err instanceof ProblemsFoundError || err instanceof UnreachableError || err instanceof RefusedError) return err.message;
  // Names every bad variable, one per line.
  if (err instanceof ConfigError) return err.message;
  if (!(err instanceof Error)) return reasonOf(err);
  const cause = err.cause === undefined ? '' : `: ${reasonOf(err.cause)}`;
  return `${reasonOf(err)}${cause}${hasCode(err, '42P01') ? ' (is the database migrated? run `virtsync migrate`)' : ''}`;
}

function hasCode(err: unknown, code: string, depth = 0): boolean {
  if (!(err instanceof Error) || depth > 8) return false;
  return errorCode(err) === code || hasCode(err.cause, code, depth + 1);
}
