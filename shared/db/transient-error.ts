/**
 * Whether a database failure is worth retrying as it is: the connection or server went
 * away, or PostgreSQL asked us to retry. Anything else (a constraint, a bug) is not.
 */
import { errorCode } from '../errors.ts';

const RETRYABLE_SQLSTATE_CLASSES = ['08', '53', '57'];
const RETRYABLE_SQLSTATES = new Set(['40001', '40P01']);
const RETRYABLE_NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT']);

export function isTransientDatabaseError(err: unknown, depth = 0): boolean {
  // Cause chains can be cyclic; a real one is never this deep.
  if (!(err instanceof Error) || depth > 8) return false;
  const code = errorCode(err);
  if (typeof code === 'string') {
    if (RETRYABLE_NODE_CODES.has(code) || RETRYABLE_SQLSTATES.has(code)) return true;
    if (/^[0-9A-Z]{5}$/.test(code) && RETRYABLE_SQLSTATE_CLASSES.includes(code.slice(0, 2))) return true;
  }
  if (/Connection terminated|connection.*(closed|ended)|Client has encountered a connection error/i.test(err.message)) return true;
  return err.cause !== undefined && isTransientDatabaseError(err.cause, depth + 1);
}
