import { syncAgentEnv } from '../../shared/config.ts';
import { runConnectedService } from '../../shared/service-runner.ts';
import { startSyncAgent } from './sync-agent.ts';

await runConnectedService({
  service: 'sync-agent',
  env: syncAgentEnv,
  // One connection per host synced at a time.
  maxDatabaseConnections: (config) => config.hostConcurrency,
  start: ({ config, log, db, bus }) => startSyncAgent({ config, db, bus, log }),
});
