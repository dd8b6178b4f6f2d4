/**
 * The metric names a PromQL expression reads, for checking dashboards and rules against what
 * the services expose. Good enough for the expressions we write (no subqueries over strings):
 * label matchers, label lists, ranges and offsets are removed; what is left that is neither a
 * function call nor a keyword is a metric name.
 */
const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'offset', 'bool']);

export function metricNamesIn(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\boffset\s+\d+[smhdwy]+/g, ' ');
  const names = new Set<string>();
  for (const match of stripped.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const after = stripped.slice((match.index ?? 0) + match[0].length).trimStart();
    const before = stripped[(match.index ?? 0) - 1] ?? ' ';
    // A number's exponent or unit (1e3, 5m) is not a name.
    if (/[0-9.]/.test(before)) continue;
    if (after.startsWith('(') || KEYWORDS.has(match[0])) continue;
    names.add(match[0]);
  }
  return [...names].sort();
}

/**
 * The metric families a /metrics page declares (`# TYPE name type`), with the sample names a
 * query may use for each: a histogram `x` is read as x_bucket, x_count and x_sum.
 */
export function exposedNames(metricsText: string): Set<string> {
  const names = new Set<string>();
  for (const match of metricsText.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name = '', type] = match;
    names.add(name);
    if (type === 'histogram' || type === 'summary') for (const suffix of ['_bucket', '_count', '_sum']) names.add(`${name}${suffix}`);
  }
  return names;
}
