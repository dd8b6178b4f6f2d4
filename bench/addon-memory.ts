/**
 * The addon's memory over many reads: a 1,000-domain host (test:///<file>, in process)
 * read READS times through one connection, the bulk call and the listing fallback taking
 * turns, RSS sampled every SAMPLE_EVERY reads after a warm-up. A leak of one domain
 * handle or record list per read would add megabytes per thousand reads; flat RSS is the
 * pass. `--reads N` runs fewer (e.g. under valgrind).
 *
 *   npm run bench:addon-memory
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { openReadOnly } from '../native/libvirt-bulk/index.ts';
import { POWER_STATES } from '../shared/power-state.ts';
import { renderNodeXml } from '../tools/fleet/node-xml.ts';
import { runBench } from './lib/harness.ts';
import { fmt } from './lib/stats.ts';
import { printTable } from './lib/table.ts';

const DOMAINS = 1_000;
const readsArg = process.argv.indexOf('--reads');
const READS = readsArg === -1 ? 10_000 : Number(process.argv[readsArg + 1]);
const WARMUP = Math.min(500, Math.floor(READS / 10));
const SAMPLE_EVERY = Math.max(1, Math.floor(READS / 10));
const MiB = 2 ** 20;

await runBench({ name: 'addon-memory', deadlineMs: 900_000, inputs: { domains: DOMAINS, reads: READS, warmup: WARMUP } }, async (context) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'virtsync-bench-addon-memory-'));
  context.defer('remove node XML', () => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'host.xml');
  const libvirtStates = POWER_STATES.filter((state) => state <= 7);
  await writeFile(file, renderNodeXml(Array.from({ length: DOMAINS }, (_, i) => ({ uuid: randomUUID(), state: libvirtStates[i % libvirtStates.length] ?? 1 }))));
  const connection = await openReadOnly(`test://${file}`);
  context.defer('close connection', () => connection.close());

  const samples: Array<{ reads: number; rssMiB: number; heapMiB: number }> = [];
  const started = performance.now();
  for (let read = 1; read <= WARMUP + READS; read++) {
    const domains = await connection.readAll({ byListing: read % 2 === 0 });
    if (domains.uuids.length !== DOMAINS) throw new Error(`read ${read}: ${domains.uuids.length} domains, expected ${DOMAINS}`);
    if (read > WARMUP && (read - WARMUP) % SAMPLE_EVERY === 0) {
      const memory = process.memoryUsage();
      samples.push({ reads: read - WARMUP, rssMiB: memory.rss / MiB, heapMiB: memory.heapUsed / MiB });
    }
  }
  const seconds = (performance.now() - started) / 1000;
  printTable(
    `RSS over ${READS} reads of ${DOMAINS} domains (after ${WARMUP} warm-up reads; bulk and listing alternate)`,
    ['reads', 'RSS', 'JS heap used'],
    samples.map((s) => [String(s.reads), `${fmt(s.rssMiB, 1)} MiB`, `${fmt(s.heapMiB, 1)} MiB`]),
  );
  // From the middle on: the first samples still carry the warm-up's garbage and allocator growth.
  const middle = samples[Math.floor(samples.length / 2) - 1];
  const last = samples.at(-1);
  if (middle === undefined || last === undefined) throw new Error('no samples');
  console.log(`${fmt(READS / seconds, 0)} reads/s over ${fmt(seconds, 1)} s\n`);
  console.log(`RSS growth from read ${middle.reads} to read ${last.reads}: ${fmt(last.rssMiB - middle.rssMiB, 2)} MiB`);
  context.result('addon-memory-rss-growth-mib', last.rssMiB - middle.rssMiB, 'MiB');
  context.result('addon-memory-rss-mib', last.rssMiB, 'MiB');
});
