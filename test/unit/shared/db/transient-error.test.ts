import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { describeUnavailability, isDataError, isTransientDatabaseError } from '../../../../shared/db/transient-error.ts';

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

describe('isDataError: only the data written can make a message unwritable for good', () => {
  const cases: { name: string; err: unknown; data: boolean }[] = [
    { name: '22003 numeric_value_out_of_range', err: pgError('22003'), data: true },
    { name: '22P02 invalid_text_representation', err: pgError('22P02'), data: true },
    { name: '23505 unique_violation', err: pgError('23505'), data: true },
    { name: '23503 foreign_key_violation, nested', err: new Error('x', { cause: pgError('23503') }), data: true },
    { name: '28P01 invalid_password', err: pgError('28P01'), data: false },
    { name: '42501 insufficient_privilege', err: pgError('42501'), data: false },
    { name: '25006 read_only_sql_transaction', err: pgError('25006'), data: false },
    { name: '42P01 undefined_table', err: pgError('42P01'), data: false },
    { name: '3D000 invalid_catalog_name', err: pgError('3D000'), data: false },
    { name: '57P01 admin_shutdown', err: pgError('57P01'), data: false },
    { name: 'ECONNREFUSED', err: pgError('ECONNREFUSED'), data: false },
    { name: 'plain Error', err: new Error('boom'), data: false },
  ];
  for (const { name, err, data } of cases) {
    test(`${name}: ${data ? 'the data' : 'not the data'}`, () => assert.equal(isDataError(err), data));
  }
});

describe('describeUnavailability names the cause an operator must act on', () => {
  const cases: { err: unknown; says: string }[] = [
    { err: pgError('28P01', 'password authentication failed'), says: 'authentication failed (28P01)' },
    { err: pgError('42501', 'permission denied for table audit_log'), says: 'permission denied' },
    { err: pgError('25006'), says: 'read-only' },
    { err: new Error('query failed', { cause: pgError('42P01') }), says: 'migrations not applied' },
    { err: pgError('3D000'), says: 'database does not exist' },
    { err: pgError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432'), says: 'unreachable' },
    { err: new Error('Connection terminated unexpectedly'), says: 'unreachable' },
  ];
  for (const { err, says } of cases) {
    test(says, () => assert.match(describeUnavailability(err), new RegExp(says.replace(/[()]/g, '\\$&'))));
  }
});
