/**
 * What a failed database call says. Transient: the connection or server went away, or
 * PostgreSQL asked us to retry (the circuit breaker counts these). Beyond that, a write can
 * only fail because of the data it carries (a data exception, class 22, or an integrity
 * violation, class 23): every other failure (authentication, missing privilege, a read-only
 * server after a failover, a table missing during a migration, an unknown database, ...)
 * means the database is unavailable to us, whatever the message, and must never cost one.
 */
import { errorCode } from '../errors.ts';

const RETRYABLE_SQLSTATE_CLASSES = ['08', '53', '57'];
const RETRYABLE_SQLSTATES = new Set(['40001', '40P01']);
const RETRYABLE_NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND']);
const DATA_SQLSTATE_CLASSES = ['22', '23'];

/** Why the database is unusable, by SQLSTATE class or code: what /readyz and the log say. */
const UNAVAILABLE_REASONS: ReadonlyArray<[RegExp, string]> = [
  [/^28/, 'authentication failed'],
  [/^42501$/, 'permission denied (a missing GRANT?)'],
  [/^25006$/, 'the database is read-only (failover in progress?)'],
  [/^42P01$|^42703$|^42883$|^3F000$/, 'schema object missing (migrations not applied?)'],
  [/^3D000$/, 'the database does not exist'],
  [/^08|^57|^53|^E[A-Z]+$/, 'unreachable or refusing connections'],
];

function codeOf(err: Error): string | undefined {
  const code = errorCode(err);
  return typeof code === 'string' ? code : undefined;
}

/** The first error in the cause chain that carries a code (cause chains can be cyclic; a real one is never 8 deep). */
function codedErrors(err: unknown): Array<{ err: Error; code: string | undefined }> {
  const chain: Array<{ err: Error; code: string | undefined }> = [];
  for (let current = err, depth = 0; current instanceof Error && depth <= 8; current = current.cause, depth++) {
    chain.push({ err: current, code: codeOf(current) });
  }
  return chain;
}

export function isTransientDatabaseError(err: unknown): boolean {
  return codedErrors(err).some(({ err: link, code }) => {
    if (code !== undefined) {
      if (RETRYABLE_NODE_CODES.has(code) || RETRYABLE_SQLSTATES.has(code)) return true;
      if (/^[0-9A-Z]{5}$/.test(code) && RETRYABLE_SQLSTATE_CLASSES.includes(code.slice(0, 2))) return true;
    }
    return /Connection terminated|connection.*(closed|ended)|Client has encountered a connection error/i.test(link.message);
  });
}

/** A failure caused by the data written (class 22 or 23): the message, not the database, is at fault. */
export function isDataError(err: unknown): boolean {
  return codedErrors(err).some(({ code }) => code !== undefined && /^[0-9A-Z]{5}$/.test(code) && DATA_SQLSTATE_CLASSES.includes(code.slice(0, 2)));
}

/** A short, stable reason for an unusable database, for logs and /readyz. */
export function describeUnavailability(err: unknown): string {
  for (const { err: link, code } of codedErrors(err)) {
    const match = code === undefined ? undefined : UNAVAILABLE_REASONS.find(([pattern]) => pattern.test(code));
    if (match !== undefined) return `${match[1]} (${code}): ${link.message}`;
  }
  if (isTransientDatabaseError(err)) return `unreachable: ${codedErrors(err)[0]?.err.message ?? 'connection lost'}`;
  const first = codedErrors(err)[0]?.err;
  return first === undefined ? String(err) : first.message;
}
