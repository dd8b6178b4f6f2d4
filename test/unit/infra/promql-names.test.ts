import assert from 'node:assert/strict';
import { test } from 'node:test';
import { exposedNames, metricNamesIn } from '../../helpers/promql-names.ts';

const cases: Array<[string, string[]]> = [
  ['sum by (kind) (rate(virtsync_discrepancies_found_total[5m])) * 60', ['virtsync_discrepancies_found_total']],
  ['histogram_quantile(0.99, sum by (le) (rate(virtsync_writer_commit_seconds_bucket[5m])))', ['virtsync_writer_commit_seconds_bucket']],
  ['up{job=~"virtsync-.*"} == 0', ['up']],
  ['virtsync:x > 1.5 * (virtsync:x offset 1h) or (virtsync:x > 0 unless virtsync:x offset 1h > 0)', ['virtsync:x']],
  ['count(virtsync_lifecycle_watcher_up == 0) or vector(0)', ['virtsync_lifecycle_watcher_up']],
  ['time() - max by (host) (a_seconds) and on (host) b', ['a_seconds', 'b']],
];
for (const [expr, names] of cases) test(expr, () => assert.deepEqual(metricNamesIn(expr), names));

test('a histogram family exposes its _bucket, _count and _sum', () => {
  const names = exposedNames('# HELP h help\n# TYPE h histogram\nh_bucket{le="1"} 0\n# TYPE c_total counter\n');
  assert.deepEqual([...names].sort(), ['c_total', 'h', 'h_bucket', 'h_count', 'h_sum']);
});
