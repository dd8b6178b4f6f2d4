/**
 * `virtsync fleet`: the demo's simulated fleet, written into the configured database
 * (compute_hosts + instances rows) and a directory of libvirt test-driver node XML files,
 * one per host, ready for sync agents with LIBVIRT_URI=test:///<dir>/{host}.xml.
 * Progress goes to stderr; the summary table to stdout.
 */
import path from 'node:path';
import type { Command } from 'commander';
import { listRegisteredHosts } from '../../shared/db/fleet-status.ts';
import { powerStateName } from '../../shared/power-state.ts';
import { DEFAULT_FLEET, type FleetOptions, type FleetPlan, planFleet } from '../fleet/fleet-plan.ts';
import { fleetLibvirtUri, insertFleetRows, writeNodeXmlFiles } from '../fleet/write-fleet.ts';
import { parseHostName, parseRatio, wholeNumber } from './argument-parsers.ts';
import type { CliContext } from './cli-context.ts';
import { UsageError } from './cli-errors.ts';
import { formatNumber as n, renderPairs, renderTable } from './text-table.ts';

interface FleetCommandOptions {
  hosts: number;
  minVms: number;
  maxVms: number;
  seed: number;
  drift: number;
  hostPrefix: string;
  dir: string;
  ifEmpty?: boolean;
}

export function registerFleetCommand(program: Command, context: CliContext): void {
  program
    .command('fleet')
    .description('generate a simulated fleet (the demo\'s generator): compute_hosts and instances rows plus one libvirt test-driver XML per host')
    .option('--hosts <n>', 'compute hosts', wholeNumber(1, 100_000), DEFAULT_FLEET.hosts)
    .option('--min-vms <n>', 'instances per host, at least', wholeNumber(0), DEFAULT_FLEET.minVmsPerHost)
    .option('--max-vms <n>', 'instances per host, at most', wholeNumber(0), DEFAULT_FLEET.maxVmsPerHost)
    .option('--seed <n>', 'seed for the scenario mix (instance UUIDs are always fresh)', wholeNumber(0), DEFAULT_FLEET.seed)
    .option('--drift <ratio>', 'share of instances given a drift scenario, 0..1', parseRatio, DEFAULT_FLEET.driftRatio)
    .option('--host-prefix <prefix>', 'host names are <prefix>-0001, <prefix>-0002, …', parseHostName, DEFAULT_FLEET.hostPrefix)
    .option('--dir <dir>', 'where to write the node XML files', 'var/fleet')
    .option('--if-empty', 'do nothing (exit 0) when compute_hosts already has rows: for a compose job that runs on every `up`')
    .action(async (options: FleetCommandOptions) => {
      if (options.maxVms < options.minVms) throw new UsageError(`--max-vms (${options.maxVms}) must be at least --min-vms (${options.minVms})`);
      const fleet: FleetOptions = {
        hosts: options.hosts,
        minVmsPerHost: options.minVms,
        maxVmsPerHost: options.maxVms,
        driftRatio: options.drift,
        seed: options.seed,
        hostPrefix: options.hostPrefix,
      };
      const db = await context.database();
      const existing = new Set((await listRegisteredHosts(db)).map((row) => row.host));
      if (options.ifEmpty === true && existing.size > 0) {
        context.print(`compute_hosts already has ${n(existing.size)} host(s): fleet not generated (--if-empty)`);
        return;
      }

      const plan = planFleet(fleet);
      const clashes = plan.hosts.filter((host) => existing.has(host));
      if (clashes.length > 0) {
        throw new UsageError(`compute_hosts already has ${clashes.slice(0, 3).join(', ')}${clashes.length > 3 ? ` and ${clashes.length - 3} more` : ''}: use another --host-prefix or a fresh database`);
      }
      const dir = path.resolve(options.dir);
      context.note(`planned ${n(plan.hosts.length)} hosts, ${n(plan.instances.length)} instances (seed ${fleet.seed}, drift ${fleet.driftRatio})`);
      await writeNodeXmlFiles(plan, dir);
      context.note(`wrote ${n(plan.hosts.length)} node XML files to ${dir}`);
      // One transaction: a failure leaves no half fleet behind.
      await db.transaction().execute((trx) =>
        insertFleetRows(trx, plan, (done, total) => context.note(`inserted ${n(done)}/${n(total)} instance rows (${Math.round((done / total) * 100)}%)`)),
      );
      context.note('committed');
      context.print(formatFleetReport(plan, dir));
    });
}

export function formatFleetReport(plan: FleetPlan, dir: string): string {
  const byScenario = new Map<string, { count: number; scenario: FleetPlan['instances'][number]['scenario'] }>();
  for (const { scenario } of plan.instances) {
    const entry = byScenario.get(scenario.name) ?? { count: 0, scenario };
    entry.count++;
    byScenario.set(scenario.name, entry);
  }
  const drifting = plan.instances.filter(({ scenario }) => scenario.rule !== null).length;
  const agentHosts = plan.hosts.length <= 8 ? plan.hosts.join(',') : `${plan.hosts[0]},…,${plan.hosts.at(-1)} (${plan.hosts.length} hosts)`;
  const rows = [...byScenario.values()].map(({ count, scenario }) => [
    scenario.name,
    count,
    `${powerStateName(scenario.row.powerState)}/${scenario.row.vmState}`,
    scenario.domain === null ? 'not running' : powerStateName(scenario.domain),
    scenario.rule ?? 'in sync',
  ]);
  return [
    '',
    'fleet generated',
    renderPairs(
      [
        ['hosts', n(plan.hosts.length)],
        ['instances', n(plan.instances.length)],
        ['with drift', n(drifting)],
        ['scenarios', n(byScenario.size)],
        ['node XML', dir],
        ['LIBVIRT_URI', fleetLibvirtUri(dir)],
        ['AGENT_HOSTS', agentHosts],
      ],
      { indent: '  ' },
    ),
    '',
    renderTable(['scenario', 'instances', 'row', 'hypervisor', 'expected rule'], rows, { indent: '  ' }),
  ].join('\n');
}
