import { tickProducerEnv } from '../../shared/config.ts';
import { createLeaderLock } from '../../shared/db/leader-lock.ts';
import { runConnectedService } from '../../shared/service-runner.ts';
import { startTickProducer } from './tick-producer.ts';

await runConnectedService({
  service: 'tick-producer',
  env: tickProducerEnv,
  maxDatabaseConnections: () => 2,
  async start({ config, log, db, bus }) {
    // A standby notices a dead leader within a quarter interval (5 s at most).
    const lockCheckMs = Math.min(5_000, Math.ceil(config.tickIntervalMs / 4));
    const lock = createLeaderLock({ url: config.databaseUrl, tls: config.databaseTls, name: 'virtsync.tick-producer', retryMs: lockCheckMs, checkMs: lockCheckMs, log });
    const producer = startTickProducer({ config, db, bus, lock, log });
    // With TICK_MAX_CYCLES set, the producer is done after its last cycle: stop the usual way.
    void producer.finished.then((outcome) => {
      if (outcome !== 'completed') return;
      log.info({ cycles: config.maxCycles }, 'configured cycles done, exiting');
      process.kill(process.pid, 'SIGTERM');
    });
    return producer;
  },
});
