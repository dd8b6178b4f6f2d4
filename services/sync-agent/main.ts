import { connectBus } from '../../shared/bus/connect.ts';
import { syncAgentEnv } from '../../shared/config.ts';
import { createDatabase } from '../../shared/db/connect.ts';
import { runService } from '../../shared/service-runner.ts';
import { startSyncAgent } from './sync-agent.ts';

await runService({
  service: 'sync-agent',
  env: syncAgentEnv,
  async start({ config, log }) {
    const db = createDatabase({ url: config.databaseUrl, log, maxConnections: config.hostConcurrency });
    const bus = connectBus({ url: config.amqpUrl, name: 'virtsync sync-agent', log });
    const agent = await startSyncAgent({ config, db, bus, log });
    return {
      checks: agent.checks,
      async stop() {
        await agent.stop();
        await bus.close();
        await db.destroy();
      },
    };
  },
});
