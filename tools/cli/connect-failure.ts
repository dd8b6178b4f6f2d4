/**
 * Why a first connection failed, in the operator's words: a server that answered but
 * refused us (wrong user, password, role, database or vhost) is not a server that cannot be
 * reached, and the fix is different.
 */
import { RefusedError, reasonOf, UnreachableError } from './cli-errors.ts';

/** PostgreSQL SQLSTATEs of a login the server refused (class 28) or a database that does not exist. */
const REFUSED_SQLSTATES: Record<string, string> = {
  '28000': 'check the user in DATABASE_URL',
  '28P01': 'check the user and password in DATABASE_URL',
  '3D000': 'check the database name in DATABASE_URL',
  '42501': 'the user may not connect to this database',
};

/** `unreachableHint`: what else may be wrong (e.g. TLS on one side only), said instead of the generic advice. */
export function databaseConnectFailure(target: string, err: unknown, unreachableHint?: string): Error {
  const code = sqlState(err);
  const refusedHint = code === undefined ? undefined : REFUSED_SQLSTATES[code];
  // A login refused for want of TLS says so rather than "check the user".
  if (refusedHint !== undefined) return new RefusedError('database', target, `${reasonOf(err)} (${unreachableHint ?? refusedHint})`, err);
  return new UnreachableError('database', target, withHint(reasonOf(err), unreachableHint), err);
}

export function brokerConnectFailure(target: string, url: string, err: unknown, hint?: string): Error {
  const reason = reasonOf(err);
  if (/ACCESS[-_]REFUSED/.test(reason)) {
    return new RefusedError('broker', target, `login refused for user ${userOf(url)} (check the user and password in AMQP_URL)`, err);
  }
  // amqplib's words when the broker closes the connection instead of opening the vhost.
  if (/Expected ConnectionOpenOk; got <ConnectionClose/.test(reason)) {
    return new RefusedError('broker', target, `vhost ${vhostOf(url)} refused: it does not exist, or user ${userOf(url)} has no permission on it (check the path in AMQP_URL)`, err);
  }
  return new UnreachableError('broker', target, withHint(reason, hint), err);
}

function withHint(reason: string, hint: string | undefined): string {
  return hint === undefined ? reason : `${reason} (${hint})`;
}

function sqlState(err: unknown, depth = 0): string | undefined {
  if (!(err instanceof Error) || depth > 8) return undefined;
  const code = 'code' in err ? err.code : undefined;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : sqlState(err.cause, depth + 1);
}

function userOf(url: string): string {
  return URL.canParse(url) ? decodeURIComponent(new URL(url).username) || 'guest' : '(unknown)';
}

function vhostOf(url: string): string {
  if (!URL.canParse(url)) return '(unknown)';
  const path = new URL(url).pathname;
  return JSON.stringify(path === '' || path === '/' ? '/' : decodeURIComponent(path.slice(1)));
}
