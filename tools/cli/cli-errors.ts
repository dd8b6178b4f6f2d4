/**
 * What can go wrong in a CLI run, and the exit code a script sees for it:
 * 0 done, 1 failed (or found nothing), 2 bad arguments or configuration,
 * 3 a service (database, broker) could not be reached, 4 it refused the login.
 */
import { CommanderError } from 'commander';
import { ConfigError, errorCode } from '../../shared/errors.ts';

export const ExitCode = {
  ok: 0,
  failed: 1,
  usage: 2,
  unreachable: 3,
  refused: 4,
} as const;

export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** Arguments that cannot be used; the message says which and why. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The command ran and the answer is "no" (e.g. no history for that instance). */
export class NotFoundError extends Error {
  override readonly name = 'NotFoundError';
}

/** The command ran and what it checked failed (a host sync that failed or timed out). */
export class FailedError extends Error {
  override readonly name = 'FailedError';
}

/** The command ran and found something wrong (`status --problems`); it printed what. */
export class ProblemsFoundError extends Error {
  override readonly name = 'ProblemsFoundError';

  constructor(count: number) {
    super(`${count} problem(s) found`);
  }
}

/** A service the command needs did not answer; `target` names it without credentials. */
export class UnreachableError extends Error {
  override readonly name = 'UnreachableError';
  readonly service: 'database' | 'broker';
  readonly target: string;

  constructor(service: UnreachableError['service'], target: string, reason: string, cause?: unknown) {
    super(`cannot reach the ${service} at ${target}: ${reason}`, { cause });
    this.service = service;
    this.target = target;
  }
}

/** A service answered and refused us: login, role, password, database or vhost. */
export class RefusedError extends Error {
  override readonly name = 'RefusedError';
  readonly service: 'database' | 'broker';

  constructor(service: RefusedError['service'], target: string, reason: string, cause?: unknown) {
    super(`the ${service} at ${target} refused the connection: ${reason}`, { cause });
    this.service = service;
  }
}

export function exitCodeFor(err: unknown): ExitCode {
  if (err instanceof CommanderError) return err.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
  if (err instanceof UsageError || err instanceof ConfigError) return ExitCode.usage;
  if (err instanceof UnreachableError) return ExitCode.unreachable;
  if (err instanceof RefusedError) return ExitCode.refused;
  return ExitCode.failed;
}

/**
 * A one-line reason for any thrown value. Node's connection errors can be an
 * AggregateError with an empty message (one error per address tried), so fall back to
 * the inner errors and the code.
 */
export function reasonOf(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  if (err.message !== '') return err.message.split('\n')[0] ?? err.message;
  if (err instanceof AggregateError && err.errors.length > 0) {
    return [...new Set(err.errors.map((inner: unknown) => reasonOf(inner)))].join('; ');
  }
  const code = errorCode(err);
  return typeof code === 'string' ? code : err.name;
}

/** host:port/path of a URL, never its user or password. */
export function describeTarget(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.host}${parsed.pathname === '' ? '/' : parsed.pathname}`;
  } catch {
    return '(unparseable URL)';
  }
}
