/** `npm run schemas`: writes each message contract as JSON Schema to docs/schemas/, for consumers in other languages. */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { CONTRACTS } from '../shared/messages/contracts.ts';

export const SCHEMA_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../docs/schemas');

/** The published text of one contract's JSON Schema. */
export function renderJsonSchema(name: keyof typeof CONTRACTS): string {
  // 'input': what a producer must send (before our own normalising transforms).
  const jsonSchema = z.toJSONSchema(CONTRACTS[name], { io: 'input' });
  return `${JSON.stringify({ $id: `virtsync/${name}`, title: name, ...jsonSchema }, null, 2)}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await mkdir(SCHEMA_DIR, { recursive: true });
  for (const name of Object.keys(CONTRACTS) as Array<keyof typeof CONTRACTS>) {
    const file = path.join(SCHEMA_DIR, `${name}.schema.json`);
    await writeFile(file, renderJsonSchema(name));
    console.log(`wrote ${path.relative(process.cwd(), file)}`);
  }
}
