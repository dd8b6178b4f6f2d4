/**
 * The layers, checked on every relative import: shared code imports only shared code (and the
 * native addon), a service imports shared code and its own folder, tools and benches may use
 * services and shared code but never the tests, and nothing outside test/ imports test/.
 * package.json (the version) may be read from anywhere.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const LAYERS = ['native', 'shared', 'services', 'tools', 'bench', 'test'] as const;
type Layer = (typeof LAYERS)[number];

/** What each layer may import, besides itself. */
const ALLOWED: Record<Layer, readonly Layer[]> = {
  native: [],
  shared: ['native'],
  services: ['native', 'shared'],
  tools: ['native', 'shared', 'services'],
  bench: ['native', 'shared', 'services', 'tools'],
  test: ['native', 'shared', 'services', 'tools'],
};
const READABLE_FROM_ANYWHERE = new Set([path.join(ROOT, 'package.json')]);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : sourceFiles(full);
    return entry.name.endsWith('.ts') ? [full] : [];
  });
}

function layerOf(file: string): Layer | undefined {
  const top = path.relative(ROOT, file).split(path.sep)[0];
  return LAYERS.find((layer) => layer === top);
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+'(\.{1,2}\/[^']+)'/g;

test('every relative import stays within what its layer may use', () => {
  const violations: string[] = [];
  let imports = 0;
  for (const layer of LAYERS) {
    for (const file of sourceFiles(path.join(ROOT, layer))) {
      for (const [, specifier] of readFileSync(file, 'utf8').matchAll(IMPORT)) {
        if (specifier === undefined) continue;
        imports++;
        const target = path.resolve(path.dirname(file), specifier);
        if (READABLE_FROM_ANYWHERE.has(target)) continue;
        const targetLayer = layerOf(target);
        if (targetLayer === layer) {
          // A service uses shared code, not another service's modules.
          const [, ownService] = path.relative(ROOT, file).split(path.sep);
          const [, targetService] = path.relative(ROOT, target).split(path.sep);
          if (layer === 'services' && ownService !== targetService) violations.push(`${path.relative(ROOT, file)} → ${specifier}`);
          continue;
        }
        if (targetLayer === undefined || !ALLOWED[layer].includes(targetLayer)) violations.push(`${path.relative(ROOT, file)} → ${specifier}`);
      }
    }
  }
  assert.ok(imports > 500, `only ${imports} relative imports found: the scan is broken`);
  assert.deepEqual(violations, []);
});
