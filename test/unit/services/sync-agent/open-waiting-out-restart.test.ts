import assert from 'node:assert/strict';
import { constants } from 'node:os';
import { test } from 'node:test';
import { LibvirtErrorCode, LibvirtErrorDomain } from '../../../../native/libvirt-bulk/index.ts';
import { openWaitingOutRestart } from '../../../../services/sync-agent/open-waiting-out-restart.ts';

/** What the addon rejects with when nothing listens on the daemon's socket (see the addon's own test for the real one). */
function daemonAway(errno: number = constants.errno.ENOENT): Error {
  return Object.assign(new Error("Failed to connect socket to '/run/libvirt/libvirt-sock': No such file or directory"), {
    libvirtCode: LibvirtErrorCode.SYSTEM_ERROR,
    libvirtDomain: LibvirtErrorDomain.RPC,
    libvirtErrno: errno,
  });
}

/** An open that fails with each of `failures` in turn, then succeeds; counts its calls. */
function opener(failures: readonly Error[]): { open: () => Promise<string>; calls: () => number } {
  let calls = 0;
  return {
    open: async () => {
      const failure = failures[calls++];
      if (failure !== undefined) throw failure;
      return 'connection';
    },
    calls: () => calls,
  };
}

test('a daemon that is back within the wait: the open succeeds and says how long it waited', async () => {
  for (const errno of [constants.errno.ENOENT, constants.errno.ECONNREFUSED]) {
    const { open, calls } = opener([daemonAway(errno), daemonAway(errno)]);
    const { opened, waitedMs } = await openWaitingOutRestart(open, { waitMs: 5_000 });
    assert.equal(opened, 'connection');
    assert.equal(calls(), 3);
    assert.ok(waitedMs > 0, `waited ${waitedMs} ms`);
  }
});

test('a daemon that is there: one open, no wait', async () => {
  const { open, calls } = opener([]);
  assert.deepEqual(await openWaitingOutRestart(open, { waitMs: 5_000 }), { opened: 'connection', waitedMs: 0 });
  assert.equal(calls(), 1);
});

test('a daemon still away after the wait: the open fails, naming the wait, with libvirt error as the cause', async () => {
  const away = daemonAway();
  const { open, calls } = opener(Array.from({ length: 1_000 }, () => away));
  const started = Date.now();
  await assert.rejects(openWaitingOutRestart(open, { waitMs: 300 }), (err: unknown) => {
    assert.ok(err instanceof Error);
    assert.match(err.message, /No such file or directory \(still away after \d+ ms\)$/);
    assert.equal(err.cause, away);
    return true;
  });
  assert.ok(Date.now() - started >= 300, 'it waited the whole bound');
  assert.ok(calls() > 2 && calls() < 20, `tried again with a backoff, not in a spin: ${calls()} opens`);
});

test('not waited for: any other failure, and any failure when the wait is 0', async () => {
  const refused = Object.assign(new Error('authentication failed'), { libvirtCode: 45, libvirtDomain: LibvirtErrorDomain.RPC });
  const otherErrno = daemonAway(constants.errno.EACCES);
  const cases: Array<{ failure: Error; waitMs: number }> = [
    { failure: refused, waitMs: 5_000 },
    { failure: otherErrno, waitMs: 5_000 },
    { failure: new Error('plain'), waitMs: 5_000 },
    { failure: daemonAway(), waitMs: 0 },
  ];
  for (const { failure, waitMs } of cases) {
    const { open, calls } = opener([failure]);
    await assert.rejects(openWaitingOutRestart(open, { waitMs }), (err: unknown) => err === failure);
    assert.equal(calls(), 1, `${failure.message}, wait ${waitMs} ms: opened once`);
  }
});
