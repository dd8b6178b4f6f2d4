import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isTransientDatabaseError } from '../../../../shared/db/transient-error.ts';

/** Shaped like the errors pg and node's net module throw: an Error with a string `code`. */
function pgError(code: string, message = 'database error', cause?: unknown): Error {
  return Object.assign(new Error(message, cause === undefined ? undefined : { cause }), { code });
}

describe('isTransientDatabaseError', () => {
  const transient: { name: string; err: unknown }[] = [
    { name: '57P01 admin_shutdown', err: pgError('57P01', 'terminating connection due to administrator command') },
    { name: '57P03 cannot_connect_now', err: pgError('57P03', 'the database system is starting up') },
    { name: '08006 connection_failure', err: pgError('08006') },
    { name: '08003 connection_does_not_exist', err: pgError('08003') },
    { name: '53300 too_many_connections', err: pgError('53300') },
    { name: '40001 serialization_failure', err: pgError('40001') },
    { name: '40P01 deadlock_detected', err: pgError('40P01') },
    { name: 'ECONNREFUSED', err: pgError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432') },
    { name: 'ECONNRESET', err: pgError('ECONNRESET') },
    { name: 'pg "Connection terminated unexpectedly" (no code)', err: new Error('Connection terminated unexpectedly') },
    { name: '57P01 nested in cause', err: new Error('query failed', { cause: pgError('57P01') }) },
    { name: 'ECONNREFUSED nested two deep', err: new Error('a', { cause: new Error('b', { cause: pgError('ECONNREFUSED') }) }) },
    { name: '40001 under a non-transient wrapper code', err: pgError('XX000', 'wrapped', pgError('40001')) },
  ];
  for (const { name, err } of transient) {
    test(`${name} is transient`, () => {
      assert.equal(isTransientDatabaseError(err), true);
    });
  }

  const permanent: { name: string; err: unknown }[] = [
    { name: '23505 unique_violation', err: pgError('23505', 'duplicate key value violates unique constraint') },
    { name: '42P01 undefined_table', err: pgError('42P01', 'relation "instances" does not exist') },
    { name: '40002 (class 40 but not a retry code)', err: pgError('40002') },
    { name: 'plain Error', err: new Error('boom') },
    { name: 'plain Error with a permanent cause', err: new Error('boom', { cause: pgError('23505') }) },
    { name: 'lower-case look-alike code', err: pgError('57p01') },
    { name: 'non-Error object with a transient code', err: { code: '57P01', message: 'x' } },
    { name: 'string', err: 'ECONNREFUSED' },
    { name: 'undefined', err: undefined },
    { name: 'null', err: null },
    { name: 'transient value as a non-Error cause', err: new Error('x', { cause: { code: '57P01' } }) },
  ];
  for (const { name, err } of permanent) {
    test(`${name} is not transient`, () => {
      assert.equal(isTransientDatabaseError(err), false);
    });
  }

  test(
    'a cyclic cause chain terminates',
    () => {
      const err = pgError('23505');
      err.cause = err;
      assert.equal(isTransientDatabaseError(err), false);
    },
  );
});
