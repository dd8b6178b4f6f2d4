import { runService } from '../../shared/service-runner.ts';
import { tickProducer } from './tick-producer.ts';

await runService(tickProducer);
