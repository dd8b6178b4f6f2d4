import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createBreaker } from '../../../shared/breaker.ts';
import { CircuitOpenError, DependencyError } from '../../../shared/errors.ts';
import { createLogger } from '../../../shared/logging.ts';
import { waitFor } from '../../../tools/wait-for.ts';

const log = createLogger({ service: 'test', level: 'silent' });
const failing = async (): Promise<never> => {
  throw new Error('hypervisor down');
};

describe('createBreaker', () => {
  test('opens after repeated failures, then refuses without calling, then recovers', async () => {
    const breaker = createBreaker({ name: 'libvirt h1', dependency: 'hypervisor', log, timeoutMs: 1_000, resetMs: 50 });
    for (let i = 0; i < 3; i++) await assert.rejects(breaker.run(failing), /hypervisor down/);
    assert.equal(breaker.state(), 'open');

    let called = false;
    await assert.rejects(
      breaker.run(async () => {
        called = true;
      }),
      (err: unknown) => err instanceof CircuitOpenError && err.code === 'VS_CIRCUIT_OPEN' && err.retryable,
    );
    assert.equal(called, false);

    await waitFor('the breaker to half-open', () => breaker.state() === 'half-open', { timeoutMs: 2_000, intervalMs: 10 });
    assert.equal(await breaker.run(async () => 'ok'), 'ok');
    assert.equal(breaker.state(), 'closed');
  });

  test('a call that takes too long fails as a retryable dependency error', async () => {
    const breaker = createBreaker({ name: 'libvirt h2', dependency: 'hypervisor', log, timeoutMs: 20, resetMs: 1_000 });
    await assert.rejects(
      breaker.run(() => new Promise((resolve) => setTimeout(resolve, 200))),
      (err: unknown) => err instanceof DependencyError && /no answer in 20 ms/.test(err.message) && err.retryable,
    );
  });

  test('failures the health filter excuses never open it', async () => {
    const breaker = createBreaker({ name: 'db', dependency: 'database', log, timeoutMs: 1_000, resetMs: 1_000, isHealthy: () => true });
    for (let i = 0; i < 10; i++) await assert.rejects(breaker.run(failing));
    assert.equal(breaker.state(), 'closed');
  });
});
