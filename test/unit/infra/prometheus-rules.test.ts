/**
 * The alerting rules as an operator meets them: promtool accepts the rule file and its unit
 * tests pass (Debian's `prometheus` package ships promtool; ./dev installs it); every alert
 * has a severity, a summary and a runbook_url whose section exists in docs/runbooks.md with
 * the four headings; every alert is exercised by a promtool test; recording rules carry the
 * project prefix.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { z } from 'zod';
import { MONITORING_DIR, renderMonitoring } from '../../../tools/export-monitoring.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const RULES = path.join(ROOT, 'infra/prometheus/virtsync-rules.yaml');
const TESTS = path.join(ROOT, 'infra/prometheus/tests/virtsync-rules.test.yaml');
const RUNBOOKS = readFileSync(path.join(ROOT, 'docs/runbooks.md'), 'utf8');

const ruleSchema = z.union([
  z.object({ record: z.string(), expr: z.string() }),
  z.object({
    alert: z.string(),
    expr: z.string(),
    for: z.string().optional(),
    labels: z.object({ severity: z.enum(['critical', 'warning', 'info']) }).catchall(z.string()),
    annotations: z.object({ summary: z.string().min(1), runbook_url: z.string() }).catchall(z.string()),
  }),
]);
const ruleFileSchema = z.object({ groups: z.array(z.object({ name: z.string(), rules: z.array(ruleSchema) })) });
const testFileSchema = z.object({ tests: z.array(z.object({ alert_rule_test: z.array(z.object({ alertname: z.string() })).optional() })) });

const rules = ruleFileSchema.parse(parse(readFileSync(RULES, 'utf8'))).groups.flatMap((group) => group.rules);
const alerts = rules.flatMap((rule) => ('alert' in rule ? [rule] : []));
const recordings = rules.flatMap((rule) => ('record' in rule ? [rule] : []));

async function promtool(args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)('promtool', args, { cwd: ROOT });
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const failed = z.object({ code: z.union([z.number(), z.string()]).optional(), stdout: z.string().optional(), stderr: z.string().optional() }).parse(err);
    return { code: typeof failed.code === 'number' ? failed.code : -1, output: `${failed.code ?? ''} ${failed.stdout ?? ''}${failed.stderr ?? ''}` };
  }
}

/** The section of docs/runbooks.md a `docs/runbooks.md#anchor` URL points to. */
function runbookSection(url: string): string | undefined {
  const anchor = /^docs\/runbooks\.md#([a-z0-9-]+)$/.exec(url)?.[1];
  const sections = RUNBOOKS.split(/^## /m).slice(1);
  return sections.find((section) => section.split('\n')[0]?.trim().toLowerCase() === anchor);
}

describe('promtool', () => {
  test('check rules accepts the rule file', async () => {
    const result = await promtool(['check', 'rules', RULES]);
    assert.equal(result.code, 0, result.output);
  });

  test('test rules: every alert test passes', async () => {
    const result = await promtool(['test', 'rules', TESTS]);
    assert.equal(result.code, 0, result.output);
    assert.match(result.output, /SUCCESS/);
  });
});

describe('every alert an operator can act on', () => {
  const tested = new Set(testFileSchema.parse(parse(readFileSync(TESTS, 'utf8'))).tests.flatMap((t) => (t.alert_rule_test ?? []).map((r) => r.alertname)));
  test('there are alerts for the day-two list', () => assert.ok(alerts.length >= 15, alerts.map((a) => a.alert).join(', ')));
  for (const alert of alerts) {
    test(`${alert.alert}: a runbook with Meaning, Impact, Diagnosis, Mitigation, and a promtool test`, () => {
      const section = runbookSection(alert.annotations.runbook_url);
      assert.ok(section !== undefined, `${alert.annotations.runbook_url} names a section of docs/runbooks.md`);
      for (const heading of ['Meaning', 'Impact', 'Diagnosis', 'Mitigation']) assert.match(section, new RegExp(`^### ${heading}$`, 'm'), heading);
      assert.ok(tested.has(alert.alert), 'named by an alert_rule_test');
    });
  }
  test('recording rules carry the virtsync: prefix', () => {
    for (const rule of recordings) assert.match(rule.record, /^virtsync:[a-z0-9_:]+$/);
  });
});

describe('Kubernetes monitoring objects (infra/k8s/monitoring/)', () => {
  test('are what `npm run monitoring` generates from the rule file', async () => {
    for (const [name, text] of Object.entries(await renderMonitoring())) {
      assert.equal(readFileSync(path.join(MONITORING_DIR, name), 'utf8'), text, `${name} is stale: run npm run monitoring`);
    }
  });

  test('the PrometheusRule carries the rule file\'s groups unchanged', () => {
    const generated = z.object({ spec: z.object({ groups: z.unknown() }) }).parse(parse(readFileSync(path.join(MONITORING_DIR, 'prometheus-rule.yaml'), 'utf8')));
    assert.deepEqual(generated.spec.groups, parse(readFileSync(RULES, 'utf8')).groups);
  });
});
