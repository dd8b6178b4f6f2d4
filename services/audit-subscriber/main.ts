import { auditSubscriberEnv } from '../../shared/config.ts';
import { runConnectedService } from '../../shared/service-runner.ts';
import { startAuditSubscriber } from './audit-subscriber.ts';

await runConnectedService({
  service: 'audit-subscriber',
  env: auditSubscriberEnv,
  start: ({ config, log, db, bus }) => startAuditSubscriber({ config, db, bus, log }),
});
