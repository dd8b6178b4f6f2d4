import { runService } from '../../shared/service-runner.ts';
import { syncAgent } from './sync-agent.ts';

await runService(syncAgent);
