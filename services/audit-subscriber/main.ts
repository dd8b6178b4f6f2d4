import { connectBus } from '../../shared/bus/connect.ts';
import { auditSubscriberEnv } from '../../shared/config.ts';
import { createDatabase } from '../../shared/db/connect.ts';
import { runService } from '../../shared/service-runner.ts';
import { startAuditSubscriber } from './audit-subscriber.ts';

await runService({
  service: 'audit-subscriber',
  env: auditSubscriberEnv,
  async start({ config, log }) {
    const db = createDatabase({ url: config.databaseUrl, log });
    const bus = connectBus({ url: config.amqpUrl, name: 'virtsync audit-subscriber', log });
    const subscriber = await startAuditSubscriber({ config, db, bus, log });
    return {
      checks: subscriber.checks,
      async stop() {
        await subscriber.stop();
        await bus.close();
        await db.destroy();
      },
    };
  },
});
