import { runService } from '../../shared/service-runner.ts';
import { auditSubscriber } from './audit-subscriber.ts';

await runService(auditSubscriber);
