import { connectBus } from '../../shared/bus/connect.ts';
import { tickProducerEnv } from '../../shared/config.ts';
import { createDatabase } from '../../shared/db/connect.ts';
import { createLeaderLock } from '../../shared/db/leader-lock.ts';
import { runService } from '../../shared/service-runner.ts';
import { startTickProducer } from './tick-producer.ts';

await runService({
  service: 'tick-producer',
  env: tickProducerEnv,
  async start({ config, log }) {
    const db = createDatabase({ url: config.databaseUrl, log, maxConnections: 2 });
    const bus = connectBus({ url: config.amqpUrl, name: 'virtsync tick-producer', log });
    // A standby notices a dead leader within a quarter interval (5 s at most).
    const lockCheckMs = Math.min(5_000, Math.ceil(config.tickIntervalMs / 4));
    const lock = createLeaderLock({ url: config.databaseUrl, name: 'virtsync.tick-producer', retryMs: lockCheckMs, checkMs: lockCheckMs, log });
    const producer = startTickProducer({ config, db, bus, lock, log });
    const stop = async (): Promise<void> => {
      await producer.stop();
      await bus.close();
      await db.destroy();
    };
    // With TICK_MAX_CYCLES set, the producer is done after its last cycle and exits on its own.
    void producer.finished.then(async () => {
      if (config.maxCycles === 0) return;
      log.info({ cycles: config.maxCycles }, 'configured cycles done, exiting');
      await stop();
      process.exit(0);
    });
    return { stop, checks: producer.checks };
  },
});
