/**
 * A leader whose lock connection goes silent (half-open: the peer neither answers nor closes)
 * must stop acting as leader within a couple of checks, and a standby must take over once the
 * server sees the session go. The silence is made by a TCP relay between the leader and
 * PostgreSQL that stops forwarding without closing either side.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import net from 'node:net';
import { createLeaderLock } from '../../../../shared/db/leader-lock.ts';
import { waitFor } from '../../../../tools/wait-for.ts';
import { createTestDatabase, type TestDatabase } from '../../../helpers/test-database.ts';
import { testLogger } from '../../../helpers/test-logger.ts';

interface SilentRelay {
  port: number;
  /** Stops forwarding in both directions; the sockets stay open. */
  silence(): void;
  /** Closes every relayed connection (the server then ends the session). */
  close(): Promise<void>;
}

async function startRelay(target: { host: string; port: number }): Promise<SilentRelay> {
  const sockets = new Set<net.Socket>();
  let silent = false;
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
      sockets.add(from);
      from.on('data', (chunk) => {
        if (!silent) to.write(chunk);
      });
      from.on('error', () => undefined);
      from.on('close', () => to.destroy());
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return {
    port: address.port,
    silence() {
      silent = true;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

let database: TestDatabase;
let relay: SilentRelay;

before(async () => {
  database = await createTestDatabase();
  const url = new URL(database.url);
  relay = await startRelay({ host: url.hostname, port: Number(url.port || 5432) });
});

after(async () => {
  await relay?.close();
  await database?.drop();
});

test('a leader whose lock connection goes silent loses leadership within a check and its time limit; a standby takes over when the session ends', async () => {
  const checkMs = 300;
  const name = `test-lock-${process.pid}`;
  const viaRelay = new URL(database.url);
  viaRelay.host = `127.0.0.1:${relay.port}`;
  const leader = createLeaderLock({ url: viaRelay.toString(), name, retryMs: checkMs, checkMs, log: testLogger });
  const standby = createLeaderLock({ url: database.url, name, retryMs: checkMs, checkMs, log: testLogger });
  const stopStandby = new AbortController();
  try {
    await leader.acquire(AbortSignal.timeout(10_000));
    const standbyAcquired = standby.acquire(stopStandby.signal);
    assert.equal(leader.isHeld(), true);

    relay.silence();
    const silencedAt = Date.now();
    await waitFor('the silent leader to give up', () => leader.lost().aborted, { timeoutMs: 10_000, intervalMs: 20 });
    const lostAfterMs = Date.now() - silencedAt;
    assert.equal(leader.isHeld(), false);
    // One check interval, then the check's own time limit (checkMs, at least 2 s), plus slack for a busy machine.
    assert.ok(lostAfterMs < checkMs + 2_000 + 1_500, `leadership dropped ${lostAfterMs} ms after the connection went silent`);
    assert.equal(standby.isHeld(), false, 'the server still holds the lock for the silent session');

    await relay.close();
    await standbyAcquired;
    assert.equal(standby.isHeld(), true);
  } finally {
    stopStandby.abort();
    await leader.release();
    await standby.release();
  }
});
