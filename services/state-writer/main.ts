import { stateWriterEnv } from '../../shared/config.ts';
import { runConnectedService } from '../../shared/service-runner.ts';
import { startStateWriter } from './state-writer.ts';

await runConnectedService({
  service: 'state-writer',
  env: stateWriterEnv,
  start: ({ config, log, metrics, db, bus }) => startStateWriter({ config, db, bus, log, metrics }),
});
