/**
 * The CLI's one pino root. Services log JSON to stdout; the CLI's stdout is its answer
 * (tables, JSON for scripts), so its log goes to stderr as short readable lines, and
 * only errors unless --verbose asks for more.
 */
import { createLogger, type Logger } from '../../shared/logging.ts';
import { parseJsonLine } from '../json-line.ts';

const LEVEL_NAMES: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };
const OMITTED = new Set(['level', 'time', 'pid', 'hostname', 'service', 'msg']);

/** `virtsync: warn broker connection lost, reconnecting (component=bus err="…")`. */
export function formatLogLine(json: string): string {
  const entry = parseJsonLine(json);
  if (entry === undefined) return `virtsync: ${json.trimEnd()}\n`;
  const level = LEVEL_NAMES[Number(entry.level)] ?? String(entry.level);
  const fields = Object.entries(entry)
    .filter(([key]) => !OMITTED.has(key))
    .map(([key, value]) => `${key}=${formatValue(value)}`);
  return `virtsync: ${level} ${String(entry.msg ?? '')}${fields.length > 0 ? ` (${fields.join(' ')})` : ''}\n`;
}

function formatValue(value: unknown): string {
  if (typeof value === 'object' && value !== null && 'message' in value) return JSON.stringify(String(value.message));
  return typeof value === 'string' ? JSON.stringify(value) : JSON.stringify(value) ?? 'undefined';
}

export function createCliLogger(options: { verbose: boolean }): Logger {
  return createLogger({
    service: 'cli',
    level: options.verbose ? 'debug' : 'error',
    destination: { write: (line: string) => process.stderr.write(formatLogLine(line)) },
  });
}
