import { connectBus } from '../../shared/bus/connect.ts';
import { tickProducerEnv } from '../../shared/config.ts';
import { createDatabase } from '../../shared/db/connect.ts';
import { runService } from '../../shared/service-runner.ts';
import { startTickProducer } from './tick-producer.ts';

await runService({
  service: 'tick-producer',
  env: tickProducerEnv,
  async start({ config, log }) {
    const db = createDatabase({ url: config.databaseUrl, log, maxConnections: 2 });
    const bus = connectBus({ url: config.amqpUrl, name: 'virtsync tick-producer', log });
    const producer = startTickProducer({ config, db, bus, log });
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
    return { stop };
  },
});
