import assert from 'node:assert/strict';
import { describe, mock, test } from 'node:test';
import { createStartupSync } from '../../../../services/sync-agent/startup-sync.ts';
import { testLogger } from '../../../helpers/test-logger.ts';

type Request = { host: string; tickId: string | null; cycle: number; trigger: string };

describe('createStartupSync', () => {
  test('each host is synced once, each at its own random moment within the window, as an on-demand sync without a tick', () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const hosts = ['h1', 'h2', 'h3', 'h4'];
      // Fractions of the window each host's look waits: 0, 1/4, 1/2, 3/4.
      const draws = [0, 0.25, 0.5, 0.75];
      const synced: Array<{ request: Request; atMs: number }> = [];
      let nowMs = 0;
      const startup = createStartupSync({
        enabled: true,
        hosts,
        windowMs: 4_000,
        log: testLogger,
        random: () => draws.shift() ?? 0,
        syncHost: async (request) => void synced.push({ request, atMs: nowMs }),
      });
      startup.start();
      for (const stepMs of [0, 1_000, 1_000, 1_000, 1_000]) {
        nowMs += stepMs;
        mock.timers.tick(stepMs);
      }
      assert.deepEqual(
        synced.map((s) => [s.request.host, s.atMs]),
        [['h1', 0], ['h2', 1_000], ['h3', 2_000], ['h4', 3_000]],
      );
      assert.ok(synced.every((s) => s.request.tickId === null && s.request.trigger === 'manual'));
    } finally {
      mock.timers.reset();
    }
  });

  test('a host whose libvirt connection is back is synced again; stop cancels what has not started', () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const synced: string[] = [];
      const startup = createStartupSync({ enabled: true, hosts: ['h1', 'h2'], windowMs: 1_000, log: testLogger, random: () => 0.5, syncHost: async (r) => void synced.push(r.host) });
      startup.resync('h2');
      mock.timers.tick(1_000);
      assert.deepEqual(synced, ['h2']);
      startup.start();
      startup.stop();
      startup.resync('h1');
      mock.timers.tick(1_000);
      assert.deepEqual(synced, ['h2']);
    } finally {
      mock.timers.reset();
    }
  });

  test('disabled, it never syncs', () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const synced: string[] = [];
      const startup = createStartupSync({ enabled: false, hosts: ['h1'], windowMs: 0, log: testLogger, syncHost: async (r) => void synced.push(r.host) });
      startup.start();
      startup.resync('h1');
      mock.timers.tick(1);
      assert.deepEqual(synced, []);
    } finally {
      mock.timers.reset();
    }
  });

  test('a failed look is logged, not thrown: the next tick covers the host', async () => {
    const startup = createStartupSync({ enabled: true, hosts: ['h1'], windowMs: 0, log: testLogger, syncHost: () => Promise.reject(new Error('database down')) });
    startup.start();
    await new Promise((resolve) => setTimeout(resolve, 20));
    startup.stop();
  });
});
