/**
 * A state writer in-process on a database and a RabbitMQ vhost of the test file's own, with a
 * probe to publish observations and read what the writer publishes. One writer at a time.
 */
import { type BusConnection, connectBus } from '../../shared/bus/connect.ts';
import { loadConfig, stateWriterEnv } from '../../shared/config.ts';
import { type RunningService, startService } from '../../shared/service-runner.ts';
import { stateWriter } from '../../services/state-writer/state-writer.ts';
import { createTestVhost, type TestVhost } from '../../tools/local-env/vhost.ts';
import { type BusProbe, openBusProbe } from './bus-probe.ts';
import { createTestDatabase, type TestDatabase } from './test-database.ts';
import { testLogger } from './test-logger.ts';

export interface WriterRig {
  database: TestDatabase;
  vhost: TestVhost;
  probe: BusProbe;
  /** Starts a writer with `env` over the rig's settings (its database and vhost, a short linger and outbox poll); a running one is stopped first. */
  startWriter(env?: Record<string, string>): Promise<RunningService>;
  stopWriter(): Promise<void>;
  /** Stops the writer and removes what the rig made. */
  close(): Promise<void>;
}

export async function openWriterRig(): Promise<WriterRig> {
  const database = await createTestDatabase();
  const vhost = await createTestVhost();
  const probe = await openBusProbe(vhost.amqpUrl);
  const bus: BusConnection = connectBus({ url: vhost.amqpUrl, name: 'test state-writer', log: testLogger });
  let writer: RunningService | undefined;
  const stopWriter = async (): Promise<void> => {
    await writer?.stop();
    writer = undefined;
  };
  return {
    database,
    vhost,
    probe,
    async startWriter(env = {}) {
      await stopWriter();
      const config = loadConfig(stateWriterEnv, { DATABASE_URL: database.url, AMQP_URL: vhost.amqpUrl, WRITER_BATCH_LINGER_MS: '10', OUTBOX_POLL_MS: '100', ...env });
      writer = await startService(stateWriter, { config, db: database.db, bus, log: testLogger });
      return writer;
    },
    stopWriter,
    async close() {
      await stopWriter();
      await bus.close();
      await probe.close();
      await vhost.delete();
      await database.drop();
    },
  };
}
