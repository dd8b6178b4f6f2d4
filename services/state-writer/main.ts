import { connectBus } from '../../shared/bus/connect.ts';
import { stateWriterEnv } from '../../shared/config.ts';
import { createDatabase } from '../../shared/db/connect.ts';
import { runService } from '../../shared/service-runner.ts';
import { startStateWriter } from './state-writer.ts';

await runService({
  service: 'state-writer',
  env: stateWriterEnv,
  async start({ config, log }) {
    const db = createDatabase({ url: config.databaseUrl, log });
    const bus = connectBus({ url: config.amqpUrl, name: 'virtsync state-writer', log });
    const writer = await startStateWriter({ config, db, bus, log });
    return {
      checks: writer.checks,
      async stop() {
        await writer.stop();
        await bus.close();
        await db.destroy();
      },
    };
  },
});
