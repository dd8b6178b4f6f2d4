/**
 * A Prometheus of the test's own: Debian's `prometheus` binary on a free port with a data
 * directory of its own, scraping the given targets every 2 s and evaluating virtsync's
 * rules every second, with each alert's `for` shortened so a test sees it fire in seconds.
 * Removed (process and directory) by close().
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseDocument, stringify } from 'yaml';
import { z } from 'zod';
import { waitFor } from '../../tools/wait-for.ts';

export interface PrometheusServer {
  url: string;
  dir: string;
  /** GET /api/v1/<path> and the `data` of its answer. */
  api(pathAndQuery: string): Promise<unknown>;
  close(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** The rule file with every group evaluated each second and every `for` cut to `forSeconds`. */
export async function shortenedRules(ruleFile: string, forSeconds: number): Promise<string> {
  const document = parseDocument(await readFile(ruleFile, 'utf8'));
  const rules = z
    .object({ groups: z.array(z.looseObject({ interval: z.string().optional(), rules: z.array(z.looseObject({ for: z.string().optional() })) })) })
    .parse(document.toJS());
  for (const group of rules.groups) {
    group.interval = '1s';
    for (const rule of group.rules) if (rule.for !== undefined) rule.for = `${forSeconds}s`;
  }
  return stringify(rules);
}

export async function startPrometheus(options: { jobs: Record<string, string[]>; rules: string }): Promise<PrometheusServer> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'virtsync-prometheus-'));
  await writeFile(path.join(dir, 'rules.yaml'), options.rules);
  await writeFile(
    path.join(dir, 'prometheus.yaml'),
    stringify({
      // A scrape may take a while on a loaded machine (the writer counts the fleet at scrape time): 2 s.
      global: { scrape_interval: '2s', scrape_timeout: '1900ms', evaluation_interval: '1s' },
      rule_files: ['rules.yaml'],
      scrape_configs: Object.entries(options.jobs).map(([job, targets]) => ({ job_name: job, static_configs: [{ targets }] })),
    }),
  );
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const log = createWriteStream(path.join(dir, 'prometheus.log'));
  const child: ChildProcess = spawn(
    'prometheus',
    [
      `--config.file=${path.join(dir, 'prometheus.yaml')}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--storage.tsdb.retention.time=1h',
    ],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const close = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    log.end();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitFor('prometheus ready', async () => (await fetch(`${url}/-/ready`).catch(() => undefined))?.ok === true, { timeoutMs: 30_000 });
  } catch (err) {
    const output = await readFile(path.join(dir, 'prometheus.log'), 'utf8').catch(() => '');
    await close();
    throw new Error(`prometheus did not start: ${output.slice(-2000)}`, { cause: err });
  }
  return {
    url,
    dir,
    async api(pathAndQuery) {
      const response = await fetch(`${url}/api/v1/${pathAndQuery}`);
      const body = z.object({ status: z.string(), data: z.unknown() }).parse(await response.json());
      if (body.status !== 'success') throw new Error(`prometheus ${pathAndQuery}: ${body.status}`);
      return body.data;
    },
    close,
  };
}
