/** The JSON Schemas published in docs/schemas/ are what the contracts say today (`npm run schemas` regenerates them). */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { CONTRACTS } from '../../../shared/messages/contracts.ts';
import { renderJsonSchema, SCHEMA_DIR } from '../../../tools/export-schemas.ts';

for (const name of Object.keys(CONTRACTS) as Array<keyof typeof CONTRACTS>) {
  test(`docs/schemas/${name}.schema.json is up to date`, () => {
    const published = readFileSync(path.join(SCHEMA_DIR, `${name}.schema.json`), 'utf8');
    assert.equal(published, renderJsonSchema(name), 'run npm run schemas');
  });
}
