import { syncAgentEnv } from '../../shared/config.ts';
import { runConnectedService } from '../../shared/service-runner.ts';
import { agentDatabaseConnections, startSyncAgent } from './sync-agent.ts';

await runConnectedService({
  service: 'sync-agent',
  env: syncAgentEnv,
  maxDatabaseConnections: agentDatabaseConnections,
  start: ({ config, log, db, bus }) => startSyncAgent({ config, db, bus, log }),
});
