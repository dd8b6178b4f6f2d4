/** The operator's guide documents every variable every service reads, and names the right services. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { SERVICE_ENVIRONMENTS, variablesOf } from '../../../shared/config.ts';

const guide = readFileSync(new URL('../../../docs/operations.md', import.meta.url), 'utf8');

for (const [service, env] of Object.entries(SERVICE_ENVIRONMENTS)) {
  test(`docs/operations.md documents every variable of ${service}`, () => {
    for (const variable of variablesOf(env)) {
      const row = guide.split('\n').find((line) => line.startsWith(`| \`${variable}\` |`));
      assert.ok(row !== undefined, `${variable} has no row in the configuration table`);
      assert.ok(row.includes(service) || row.includes('| all |'), `${variable}'s row does not name ${service}`);
    }
  });
}
