/**
 * `npm run demo`: one full virtsync cycle over a simulated fleet on the libvirt test
 * driver; with `--qemu` (`npm run demo:qemu`), the pipeline on real QEMU guests across two
 * local hosts instead (needs root, qemu-system-x86 and libvirt's QEMU driver). Uses the
 * database `virtsync_demo` on DATABASE_URL's server (dropped and recreated) and deletes
 * virtsync's queues on AMQP_URL: point it at a demo broker.
 */
import path from 'node:path';
import { mkdir } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { loadConfig, toolsEnv } from '../../shared/config.ts';
import { createDatabase } from '../../shared/db/connect.ts';
import { migrateToLatest } from '../../shared/db/migrate.ts';
import { createLogger } from '../../shared/logging.ts';
import { recreateDatabase } from '../db-admin.ts';
import { DEFAULT_FLEET, planFleet } from '../fleet/fleet-plan.ts';
import { formatSummary } from './print-summary.ts';
import { resetBus } from './reset-bus.ts';
import { runDemo } from './run-demo.ts';
import { QEMU_DEMO_HOSTS, runQemuDemo } from './run-qemu-demo.ts';
import { coerceError } from '../../shared/errors.ts';

const USAGE = `usage: npm run demo -- [--hosts N] [--min-vms N] [--max-vms N] [--drift 0..1] [--seed N] [--agents N] [--cycle-ms N]
       npm run demo -- --qemu [--guests N] [--cycle-ms N]   (npm run demo:qemu)`;

const { values } = parseArgs({
  options: {
    hosts: { type: 'string', default: String(DEFAULT_FLEET.hosts) },
    'min-vms': { type: 'string', default: String(DEFAULT_FLEET.minVmsPerHost) },
    'max-vms': { type: 'string', default: String(DEFAULT_FLEET.maxVmsPerHost) },
    drift: { type: 'string', default: String(DEFAULT_FLEET.driftRatio) },
    seed: { type: 'string', default: String(DEFAULT_FLEET.seed) },
    agents: { type: 'string', default: '2' },
    'cycle-ms': { type: 'string', default: '3000' },
    qemu: { type: 'boolean', default: false },
    guests: { type: 'string', default: '3' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}

function intFlag(name: keyof typeof values, min: number): number {
  const value = Number(values[name]);
  if (!Number.isInteger(value) || value < min) {
    console.error(`--${name} must be a whole number >= ${min}, got ${JSON.stringify(values[name])}\n${USAGE}`);
    process.exit(2);
  }
  return value;
}

const fleet = {
  ...DEFAULT_FLEET,
  hosts: intFlag('hosts', 1),
  minVmsPerHost: intFlag('min-vms', 1),
  maxVmsPerHost: intFlag('max-vms', 1),
  seed: intFlag('seed', 0),
  driftRatio: Number(values.drift),
};
if (fleet.maxVmsPerHost < fleet.minVmsPerHost || !(fleet.driftRatio >= 0 && fleet.driftRatio <= 1)) {
  console.error(`--max-vms must be >= --min-vms and --drift within 0..1\n${USAGE}`);
  process.exit(2);
}

const config = loadConfig(toolsEnv);
const log = createLogger({ service: 'demo', level: 'warn' });
const workDir = path.resolve('var/demo');
const logDir = path.join(workDir, 'logs');
await mkdir(logDir, { recursive: true });

const databaseUrl = await recreateDatabase(config.databaseUrl, 'virtsync_demo');
const db = createDatabase({ url: databaseUrl, log });
try {
  await migrateToLatest(db, log);
  const summary = values.qemu
    ? await (async () => {
        await resetBus(config.amqpUrl, QEMU_DEMO_HOSTS);
        return runQemuDemo(db, {
          databaseUrl,
          amqpUrl: config.amqpUrl,
          guestsPerHost: intFlag('guests', 3),
          logDir,
          cycleMs: intFlag('cycle-ms', 1),
          timeoutMs: 120_000,
          progress: (line) => console.log(line),
        });
      })()
    : await (async () => {
        await resetBus(config.amqpUrl, planFleet(fleet).hosts);
        return runDemo(db, {
          databaseUrl,
          amqpUrl: config.amqpUrl,
          fleet,
          fleetDir: path.join(workDir, 'fleet'),
          logDir,
          cycleMs: intFlag('cycle-ms', 1),
          agents: intFlag('agents', 1),
          timeoutMs: 120_000,
          progress: (line) => console.log(line),
        });
      })();
  console.log(formatSummary(summary));
  console.log(`\nservice logs: ${logDir}`);
  // The result stays in the database: say how to look at it with the CLI, without printing a password.
  const shownUrl = new URL(databaseUrl);
  if (shownUrl.password !== '') shownUrl.password = 'PASSWORD';
  console.log(`look at the result: DATABASE_URL='${shownUrl.href}' npm run cli -- status   (or npx virtsync status after npm run build)`);
  process.exitCode = summary.ok ? 0 : 1;
} catch (err) {
  console.error(`demo failed: ${coerceError(err).message}\nservice logs: ${logDir}`);
  process.exitCode = 1;
} finally {
  await db.destroy();
}
