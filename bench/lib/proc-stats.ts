/**
 * Linux /proc readings: a process's peak and current resident memory, and CPU seconds
 * used by a process or by every process of a command (postgres backends, RabbitMQ's
 * beam.smp, libvirtd), to see which component is busy while a benchmark runs; and the
 * time their threads were ready to run but waited for a CPU (schedstat), to see how much
 * of a figure is the machine being short of cores rather than the work itself.
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

/**
 * Seconds the process's threads have spent runnable but waiting for a CPU (the second
 * field of each /proc/<pid>/task/<tid>/schedstat, in ns); threads that exited are not counted.
 */
export function runQueueWaitSecondsOf(pid: number | string): number {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return 0;
  }
  let nanoseconds = 0;
  for (const task of tasks) {
    try {
      nanoseconds += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[1] ?? 0);
    } catch {
      // the thread exited
    }
  }
  return nanoseconds / 1e9;
}

/** CPU seconds used so far by every live process whose command starts with each prefix. */
export function cpuSecondsByCommand(prefixes: readonly string[]): Map<string, number> {
  const totals = new Map(prefixes.map((prefix) => [prefix, 0]));
  for (const { prefix, cpuSeconds } of processesOf(prefixes)) totals.set(prefix, (totals.get(prefix) ?? 0) + cpuSeconds);
  return totals;
}

interface Usage {
  cpuSeconds: number;
  waitSeconds: number;
}

/** Every live process whose command starts with one of the prefixes, with its CPU seconds so far. */
function processesOf(prefixes: readonly string[]): Array<{ prefix: string; pid: string; cpuSeconds: number }> {
  const found: Array<{ prefix: string; pid: string; cpuSeconds: number }> = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const stat = readStat(pid);
    const prefix = stat === undefined ? undefined : prefixes.find((p) => stat.comm.startsWith(p));
    if (stat !== undefined && prefix !== undefined) found.push({ prefix, pid, cpuSeconds: stat.cpuSeconds });
  }
  return found;
}

/** Usage so far of each live process of each prefix, by pid. */
function usageByProcess(prefixes: readonly string[]): Map<string, { prefix: string; usage: Usage }> {
  return new Map(processesOf(prefixes).map(({ prefix, pid, cpuSeconds }) => [pid, { prefix, usage: { cpuSeconds, waitSeconds: runQueueWaitSecondsOf(pid) } }]));
}

function usageOf(pid: number): Usage | undefined {
  const cpuSeconds = cpuSecondsOf(pid);
  return cpuSeconds === undefined ? undefined : { cpuSeconds, waitSeconds: runQueueWaitSecondsOf(pid) };
}

/** The components on this machine besides virtsync's own processes. */
export const COMPONENTS = ['postgres', 'beam.smp', 'libvirtd'] as const;

/**
 * CPU used over a window, per named process and per component. A component's figure
 * sums its processes alive at the end, each from its own reading at the start (or from
 * zero if it started meanwhile): a backend that exits in between is lost, and nothing
 * goes negative. It includes whatever else uses the component meanwhile (other databases
 * on the same server).
 */
export function startCpuWindow(pids: () => ReadonlyMap<string, number>): { stop(): CpuWindow } {
  const started = performance.now();
  const componentProcesses = usageByProcess(COMPONENTS);
  const byProcess = new Map<string, Usage>();
  for (const [name, pid] of pids()) byProcess.set(name, usageOf(pid) ?? { cpuSeconds: 0, waitSeconds: 0 });
  const since = (name: string, now: Usage, before: Usage | undefined): CpuWindow['rows'][number] => ({
    name,
    cpuSeconds: now.cpuSeconds - (before?.cpuSeconds ?? 0),
    waitSeconds: now.waitSeconds - (before?.waitSeconds ?? 0),
  });
  return {
    stop() {
      const wallSeconds = (performance.now() - started) / 1000;
      const rows: CpuWindow['rows'] = [];
      for (const [name, pid] of pids()) {
        const now = usageOf(pid);
        if (now !== undefined) rows.push(since(name, now, byProcess.get(name)));
      }
      // Per process, so a backend that exits meanwhile takes only its own CPU away, not the others'.
      const components = new Map<string, CpuWindow['rows'][number]>(COMPONENTS.map((component) => [component, { name: component, cpuSeconds: 0, waitSeconds: 0 }]));
      for (const [pid, { prefix, usage }] of usageByProcess(COMPONENTS)) {
        const row = components.get(prefix);
        const used = since(prefix, usage, componentProcesses.get(pid)?.usage);
        if (row === undefined) continue;
        row.cpuSeconds += used.cpuSeconds;
        row.waitSeconds += used.waitSeconds;
      }
      rows.push(...components.values());
      return { wallSeconds, rows };
    },
  };
}

export interface CpuWindow {
  wallSeconds: number;
  /** waitSeconds: runnable but waiting for a CPU, summed over the process's (or component's) threads. */
  rows: Array<{ name: string; cpuSeconds: number; waitSeconds: number }>;
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
