/** Aligned plain-text columns for terminal output; numbers are right-aligned. */

export type Cell = string | number;

export function formatNumber(value: number): string {
  return value.toLocaleString('en-US');
}

/** A column is right-aligned when every cell in it is a number (or a '-' placeholder). */
export function renderTable(header: readonly string[], rows: readonly (readonly Cell[])[], options: { indent?: string } = {}): string {
  const indent = options.indent ?? '';
  const text = (cell: Cell): string => (typeof cell === 'number' ? formatNumber(cell) : cell);
  const numeric = header.map(
    (_, column) => rows.some((row) => typeof row[column] === 'number') && rows.every((row) => typeof row[column] === 'number' || row[column] === '-'),
  );
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => text(row[column] ?? '').length)));
  const line = (cells: readonly Cell[]): string =>
    indent +
    header
      .map((_, column) => {
        const value = text(cells[column] ?? '');
        const width = widths[column] ?? 0;
        return numeric[column] ? value.padStart(width) : value.padEnd(width);
      })
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** "90 s", "20 min", "2 h", "1.5 h": a length of time with its unit. */
export function formatDuration(ms: number): string {
  const seconds = ms / 1000;
  if (seconds < 120) return `${Number(seconds.toFixed(1))} s`;
  if (seconds < 7_200) return `${Number((seconds / 60).toFixed(1))} min`;
  return `${Number((seconds / 3_600).toFixed(1))} h`;
}

/** "35 s ago", "12 min ago", "3 h ago", "2 d ago". */
export function formatAge(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 120) return `${seconds} s ago`;
  if (seconds < 7_200) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 172_800) return `${Math.round(seconds / 3_600)} h ago`;
  return `${Math.round(seconds / 86_400)} d ago`;
}

/** `label   value` lines, labels padded to the longest. */
export function renderPairs(pairs: readonly (readonly [string, string])[], options: { indent?: string } = {}): string {
  const width = Math.max(0, ...pairs.map(([label]) => label.length));
  return pairs.map(([label, value]) => `${options.indent ?? ''}${label.padEnd(width)}  ${value}`).join('\n');
}
