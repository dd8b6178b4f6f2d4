/**
 * What row-level security costs the agent's per-tick read (issue 16's choice between RLS and
 * the conductor model). One database with the fleet bench's shape (hosts × VMs rows); the
 * agent's query for one host (readHostInstances) timed as the table owner, which bypasses
 * row-level security, and as that host's agent login (`agent:<host>`, as `virtsync hosts add`
 * makes it), whose rows are filtered by the policy. Same connection settings, same rows,
 * alternating rounds so drift on the shared machine hits both alike. Prints the per-read
 * medians and what the difference adds to a fleet cycle's reads (hosts × difference).
 * TLS is off here: this measures the policy, not the transport.
 */
import { parseArgs } from 'node:util';
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { createDatabase } from '../shared/db/connect.ts';
import { readHostInstances } from '../shared/db/instances.ts';
import { PowerState } from '../shared/power-state.ts';
import { grantHostDatabaseLogin } from '../tools/provisioning/host-database-login.ts';
import { runBench } from './lib/harness.ts';
import { benchLogger, createBenchDatabase } from './lib/resources.ts';
import { median } from './lib/stats.ts';

const { values } = parseArgs({ options: { hosts: { type: 'string', default: '1000' }, vms: { type: 'string', default: '100' }, reads: { type: 'string', default: '2000' } } });
const hosts = Number(values.hosts);
const vms = Number(values.vms);
const reads = Number(values.reads);

await runBench({ name: 'agent-row-security', deadlineMs: 600_000, inputs: { hosts, vms, reads } }, async (context) => {
  const { db, url } = await createBenchDatabase(context, 'agent-rls', 2);
  context.progress(`seeding ${hosts * vms} rows`);
  const names = Array.from({ length: hosts }, (_, index) => `rls-host-${index}`);
  await db.insertInto('compute_hosts').values(names.map((host) => ({ host }))).execute();
  for (let first = 0; first < hosts; first += 100) {
    const rows = names.slice(first, first + 100).flatMap((host) =>
      Array.from({ length: vms }, () => ({ uuid: randomUUID(), host, power_state: PowerState.RUNNING, vm_state: 'active' as const })),
    );
    await db.insertInto('instances').values(rows).execute();
  }
  await sql`analyze instances`.execute(db);
  const host = names[Math.floor(hosts / 2)] ?? 'rls-host-0';
  const login = await grantHostDatabaseLogin(db, host);
  context.defer(`drop role ${login}`, () => sql`drop role if exists ${sql.id(login)}`.execute(db));
  // The bench's server trusts local logins (no password): only the login changes.
  const agentUrl = new URL(url);
  agentUrl.username = encodeURIComponent(login);
  const agentDb = createDatabase({ url: agentUrl.toString(), log: benchLogger, maxConnections: 1 });
  context.defer('close agent pool', () => agentDb.destroy());

  const owner: number[] = [];
  const agent: number[] = [];
  const time = async (target: typeof db, into: number[]): Promise<void> => {
    const started = process.hrtime.bigint();
    const rows = await readHostInstances(target, host);
    into.push(Number(process.hrtime.bigint() - started) / 1e6);
    if (rows.length !== vms) throw new Error(`read ${rows.length} rows of ${host}, expected ${vms}`);
  };
  for (let warm = 0; warm < 50; warm++) await Promise.all([time(db, []), time(agentDb, [])]);
  for (let round = 0; round < reads; round++) {
    await time(db, owner);
    await time(agentDb, agent);
  }
  const [ownerMs, agentMs] = [median(owner), median(agent)];
  console.log(`one host's read (${vms} rows of ${hosts * vms}), median of ${reads}: owner (no RLS) ${ownerMs.toFixed(3)} ms, agent login (RLS) ${agentMs.toFixed(3)} ms`);
  context.result('agent-read-owner-ms', ownerMs, 'ms');
  context.result('agent-read-rls-ms', agentMs, 'ms');
  context.result('rls-added-per-cycle-ms', (agentMs - ownerMs) * hosts, `ms of database time over ${hosts} host reads`);
});
