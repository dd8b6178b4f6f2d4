/**
 * Linux /proc readings: a process's peak and current resident memory, and CPU seconds
 * used by a process or by every process of a command (postgres backends, RabbitMQ's
 * beam.smp, libvirtd), to see which component is busy while a benchmark runs.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let clockTicks: number | undefined;
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

export interface ProcMemory {
  /** Peak resident set (VmHWM), MiB. */
  peakMiB: number;
  /** Current resident set (VmRSS), MiB. */
  rssMiB: number;
}

export function readMemory(pid: number): ProcMemory | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined; // exited
  }
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { peakMiB: kib('VmHWM') / 1024, rssMiB: kib('VmRSS') / 1024 };
}

interface Stat {
  comm: string;
  cpuSeconds: number;
}

function readStat(pid: number | string): Stat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm is in parentheses and may contain spaces; the fields after it are space-separated.
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  const fields = text.slice(close + 2).split(' ');
  // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after "pid (comm) ".
  const ticks = Number(fields[11]) + Number(fields[12]);
  return { comm: text.slice(open + 1, close), cpuSeconds: ticks / ticksPerSecond() };
}

export function cpuSecondsOf(pid: number): number | undefined {
  return readStat(pid)?.cpuSeconds;
}

/** CPU seconds used so far by every live process whose command starts with each prefix. */
export function cpuSecondsByCommand(prefixes: readonly string[]): Map<string, number> {
  const totals = new Map(prefixes.map((prefix) => [prefix, 0]));
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(entry);
    if (stat === undefined) continue;
    const prefix = prefixes.find((p) => stat.comm.startsWith(p));
    if (prefix !== undefined) totals.set(prefix, (totals.get(prefix) ?? 0) + stat.cpuSeconds);
  }
  return totals;
}

/** The components on this machine besides virtsync's own processes. */
export const COMPONENTS = ['postgres', 'beam.smp', 'libvirtd'] as const;

/**
 * CPU used over a window, per named process and per component. A component's figure
 * counts processes alive at both ends (a backend that exits in between is lost), and
 * includes whatever else uses it meanwhile (other databases on the same server).
 */
export function startCpuWindow(pids: () => ReadonlyMap<string, number>): { stop(): CpuWindow } {
  const started = performance.now();
  const byComponent = cpuSecondsByCommand(COMPONENTS);
  const byProcess = new Map<string, number>();
  for (const [name, pid] of pids()) byProcess.set(name, cpuSecondsOf(pid) ?? 0);
  return {
    stop() {
      const wallSeconds = (performance.now() - started) / 1000;
      const componentsNow = cpuSecondsByCommand(COMPONENTS);
      const rows: CpuWindow['rows'] = [];
      for (const [name, pid] of pids()) {
        const now = cpuSecondsOf(pid);
        if (now !== undefined) rows.push({ name, cpuSeconds: now - (byProcess.get(name) ?? 0) });
      }
      for (const component of COMPONENTS) {
        rows.push({ name: component, cpuSeconds: (componentsNow.get(component) ?? 0) - (byComponent.get(component) ?? 0) });
      }
      return { wallSeconds, rows };
    },
  };
}

export interface CpuWindow {
  wallSeconds: number;
  rows: Array<{ name: string; cpuSeconds: number }>;
}

/** Samples peak memory of named processes until stopped; the last reading of an exited process is kept. */
export function startMemorySampler(pids: () => ReadonlyMap<string, number>, intervalMs = 250): { stop(): Map<string, ProcMemory> } {
  const peaks = new Map<string, ProcMemory>();
  const sample = (): void => {
    for (const [name, pid] of pids()) {
      const memory = readMemory(pid);
      // A zombie (exited, not yet reaped) has no memory lines.
      if (memory === undefined || Number.isNaN(memory.peakMiB)) continue;
      const seen = peaks.get(name);
      peaks.set(name, { peakMiB: Math.max(memory.peakMiB, seen?.peakMiB ?? 0), rssMiB: memory.rssMiB });
    }
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return peaks;
    },
  };
}
