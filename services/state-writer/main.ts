import { runService } from '../../shared/service-runner.ts';
import { stateWriter } from './state-writer.ts';

await runService(stateWriter);
