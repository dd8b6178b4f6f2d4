#!/usr/bin/env node
// The `virtsync` bin: runs the compiled CLI (`npm run build` writes dist/). From a source
// checkout without a build, `npm run cli -- …` runs the TypeScript through tsx instead.
import { existsSync } from 'node:fs';

const main = new URL('../dist/tools/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('virtsync: dist/ is missing: run `npm run build` first (or `npm run cli -- …` to run from source)\n');
  process.exit(2);
}
await import(main.href);
