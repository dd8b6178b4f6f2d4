/**
 * `npm run build` produces JavaScript that runs without tsx: compiled into a directory of
 * its own, the CLI answers --help and every service's main loads far enough to reject a
 * bad configuration (exit 2), which means every module it imports resolved and ran.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { SERVICE_ENVIRONMENTS } from '../../../shared/config.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const run = promisify(execFile);

async function runNode(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, args, { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const failed = err as { code?: unknown; stdout?: unknown; stderr?: unknown };
    return { code: typeof failed.code === 'number' ? failed.code : -1, stdout: String(failed.stdout ?? ''), stderr: String(failed.stderr ?? '') };
  }
}

describe('npm run build', () => {
  let outDir: string;
  before(async () => {
    // Inside the checkout (var/ is ignored by git), so the output resolves node_modules as dist/ does.
    await mkdir(path.join(ROOT, 'var'), { recursive: true });
    outDir = await mkdtemp(path.join(ROOT, 'var', 'dist-'));
    const tsc = path.join(ROOT, 'node_modules/typescript/bin/tsc');
    await run(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--outDir', outDir], { cwd: ROOT });
    // As `npm run build` does: the compiled addon loader looks for the addon beside itself.
    const addon = 'native/libvirt-bulk/build/Release/virtsync_libvirt_bulk.node';
    await mkdir(path.dirname(path.join(outDir, addon)), { recursive: true });
    await copyFile(path.join(ROOT, addon), path.join(outDir, addon));
  });
  after(async () => {
    await rm(outDir, { recursive: true, force: true });
  });

  test('the compiled CLI prints its help', async () => {
    const result = await runNode([path.join(outDir, 'tools/cli/main.js'), '--help']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^Usage: virtsync/);
  });

  test('a compiled command loads its modules', async () => {
    const result = await runNode([path.join(outDir, 'tools/cli/main.js'), 'status', '--help']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^Usage: virtsync status/);
  });

  for (const service of Object.keys(SERVICE_ENVIRONMENTS)) {
    test(`dist/services/${service}/main.js loads and checks its configuration`, async () => {
      const result = await runNode([path.join(outDir, 'services', service, 'main.js')], { LOG_LEVEL: 'not-a-level' });
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, /LOG_LEVEL/);
    });
  }
});
