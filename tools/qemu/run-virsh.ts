/**
 * One `virsh` command against a libvirt URI, in the C locale: virsh translates what it
 * prints (states, reasons, event words), and whoever parses it expects English.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export async function runVirsh(uri: string, args: readonly string[], options: { timeoutMs?: number } = {}): Promise<string> {
  const { stdout } = await execFileAsync('virsh', ['-q', '-c', uri, ...args], {
    env: { ...process.env, LC_ALL: 'C' },
    timeout: options.timeoutMs ?? 30_000,
  });
  return stdout;
}
