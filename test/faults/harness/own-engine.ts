/**
 * An engine of the test file's own (a RabbitMQ node or cluster, a PostgreSQL cluster): leftovers
 * of dead runs removed, started before the file's tests, removed after them, also when they fail.
 * Returns its accessor, which names the engine if it never started.
 */
import { after, before } from 'node:test';
import { removeLeftovers } from '../../../tools/local-env/engines/engine-registry.ts';

export function useOwnEngine<E extends { remove(): Promise<void> }>(what: string, start: () => Promise<E>, options: { startTimeoutMs: number }): () => E {
  let engine: E | undefined;
  before(
    async () => {
      removeLeftovers();
      engine = await start();
    },
    { timeout: options.startTimeoutMs },
  );
  after(async () => {
    await engine?.remove();
  });
  return () => {
    if (engine === undefined) throw new Error(`${what} did not start`);
    return engine;
  };
}
