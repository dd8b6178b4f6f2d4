/** `npm run schemas`: writes each message contract as JSON Schema to docs/schemas/, for consumers in other languages. */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { CONTRACTS } from '../shared/messages/contracts.ts';

const outDir = path.resolve('docs/schemas');
await mkdir(outDir, { recursive: true });
for (const [name, schema] of Object.entries(CONTRACTS)) {
  // 'input': what a producer must send (before our own normalising transforms).
  const jsonSchema = z.toJSONSchema(schema, { io: 'input' });
  const file = path.join(outDir, `${name}.schema.json`);
  await writeFile(file, `${JSON.stringify({ $id: `virtsync/${name}`, title: name, ...jsonSchema }, null, 2)}\n`);
  console.log(`wrote ${path.relative(process.cwd(), file)}`);
}
