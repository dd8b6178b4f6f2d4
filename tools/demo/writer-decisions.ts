/**
 * What the writer has decided so far, by rule, read from its /metrics
 * (`virtsync_writer_decisions_total{rule}`): the writer's published interface, not its log lines.
 */
import { createServer } from 'node:net';
import { COUNT_RULES, SKIP_RULES, type SyncRule, UPDATE_RULES } from '../../shared/sync-rules.ts';

const RULES: readonly SyncRule[] = [...UPDATE_RULES, ...COUNT_RULES, ...SKIP_RULES];
const DECISION_LINE = /^virtsync_writer_decisions_total\{rule="([^"]+)"\} (\d+(?:\.\d+)?(?:e\+\d+)?)$/;

export async function readWriterDecisions(httpPort: number): Promise<Map<SyncRule, number>> {
  const response = await fetch(`http://127.0.0.1:${httpPort}/metrics`);
  if (!response.ok) throw new Error(`writer /metrics answered ${response.status}`);
  const decisions = new Map<SyncRule, number>();
  for (const line of (await response.text()).split('\n')) {
    const match = DECISION_LINE.exec(line);
    const rule = RULES.find((known) => known === match?.[1]);
    if (match !== null && rule !== undefined) decisions.set(rule, Number(match[2]));
  }
  return decisions;
}

/** A TCP port free right now, for a child process's HTTP server whose address we must know. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (typeof address !== 'object' || address === null) throw new Error('no TCP port assigned');
  return address.port;
}
