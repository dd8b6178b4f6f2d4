/**
 * A RabbitMQ node of the test's own, on ports of its own, that the test may stop, kill
 * and restart at will without touching the machine's shared node. Everything the node
 * reads or writes is under its directory in ENGINES_DIR: its own config file (the system
 * one listens on 5672), its own env file (the system one names the node rabbit@localhost),
 * and an Erlang cookie in its own HOME. Server and CLI are the tools in
 * /usr/lib/rabbitmq/bin run as the current user, so both read that same cookie.
 *
 * A caller may add rabbitmq.conf lines and enable plugins (TLS listeners, x509 logins).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { coerceError } from '../../../shared/errors.ts';
import { waitFor } from '../../wait-for.ts';
import { engineDir, killRecordedPids, registerTeardown, uniqueEngineName, unregisterTeardown } from './engine-registry.ts';
import { freePorts } from './free-port.ts';

const BIN = '/usr/lib/rabbitmq/bin';
const START_TIMEOUT_S = 120;

export interface RabbitNodeOptions {
  /** Lines appended to the node's rabbitmq.conf (e.g. TLS listeners, auth mechanisms). */
  extraConfig?: readonly string[];
  /** false: no plain-text AMQP listener at all (a TLS-only node, its listener in extraConfig); `port` is then unused. */
  plainTcp?: boolean;
  /** Plugins to enable (none by default: no management listener to collide with). */
  plugins?: readonly string[];
  /** Directory holding the Erlang cookie (HOME of server and CLI); nodes of one cluster share it. */
  cookieHome?: string;
  /** Where the node's directory goes (a cluster keeps its nodes together); its own directory in ENGINES_DIR by default. */
  parentDir?: string;
}

export interface RabbitNode {
  /** e.g. vse123x4f5e6a@localhost */
  nodeName: string;
  port: number;
  dir: string;
  /** amqp://guest:guest@127.0.0.1:<port>/<vhost> */
  amqpUrl(vhost?: string): string;
  /** rabbitmqctl -n <node> ...; resolves with its stdout. */
  ctl(args: readonly string[], timeoutMs?: number): Promise<string>;
  /** Starts the OS process (again) and waits until the rabbit application runs. */
  start(): Promise<void>;
  /** `rabbitmqctl stop`: a clean node shutdown; resolves once the OS process has exited. */
  stop(): Promise<void>;
  stopApp(): Promise<void>;
  startApp(): Promise<void>;
  /** SIGKILL to the Erlang VM: a crash, no goodbye to clients or peers. */
  kill(): Promise<void>;
  /** A vhost with full permissions for guest. */
  addVhost(name: string): Promise<void>;
  /** Kills the node if it runs and deletes its files. */
  remove(): Promise<void>;
}

/**
 * Starts a node; one that fails to boot (a port taken between the check and the bind, a
 * start slower than the time-out on a busy machine) is removed and tried once more as a
 * new node, with new ports.
 */
export async function startRabbitNode(options: RabbitNodeOptions = {}): Promise<RabbitNode> {
  try {
    return await startNewNode(options);
  } catch (err) {
    process.stderr.write(`engines: ${coerceError(err).message}; trying a new node\n`);
    return startNewNode(options);
  }
}

async function startNewNode(options: RabbitNodeOptions): Promise<RabbitNode> {
  const name = uniqueEngineName();
  const dir = options.parentDir === undefined ? engineDir(name) : path.join(options.parentDir, name);
  mkdirSync(dir, { recursive: true });
  const home = options.cookieHome ?? path.join(dir, 'home');
  writeCookie(home);
  const [port, distPort] = (await freePorts(2)) as [number, number];
  const nodeName = `${name}@localhost`;
  const pidFile = path.join(dir, 'beam.pid');
  const wrapperPidFile = path.join(dir, 'wrapper.pid');
  const tcpListener = options.plainTcp === false ? 'listeners.tcp = none' : `listeners.tcp.1 = 127.0.0.1:${port}`;
  writeFileSync(path.join(dir, 'rabbitmq.conf'), [tcpListener, 'log.console = false', ...(options.extraConfig ?? [])].join('\n') + '\n');
  writeFileSync(path.join(dir, 'enabled_plugins'), `[${(options.plugins ?? []).join(',')}].\n`);
  writeFileSync(path.join(dir, 'rabbitmq-env.conf'), '');
  const env = {
    ...process.env,
    HOME: home,
    RABBITMQ_NODENAME: nodeName,
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_MNESIA_BASE: path.join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: path.join(dir, 'log'),
    RABBITMQ_PID_FILE: pidFile,
    RABBITMQ_ENABLED_PLUGINS_FILE: path.join(dir, 'enabled_plugins'),
    RABBITMQ_CONFIG_FILE: path.join(dir, 'rabbitmq.conf'),
    RABBITMQ_ADVANCED_CONFIG_FILE: path.join(dir, 'advanced.config'),
    RABBITMQ_CONF_ENV_FILE: path.join(dir, 'rabbitmq-env.conf'),
  };
  const run = promisify(execFile);
  const ctl = async (args: readonly string[], timeoutMs = 60_000): Promise<string> => {
    const { stdout } = await run(path.join(BIN, 'rabbitmqctl'), ['-n', nodeName, ...args], { env, timeout: timeoutMs });
    return stdout;
  };

  let wrapper: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    const out = openSync(path.join(dir, 'server.out'), 'a');
    // Not -detached: that mode writes no pid file on this version, and the pid is what kill() needs.
    const child = spawn(path.join(BIN, 'rabbitmq-server'), [], { env, detached: true, stdio: ['ignore', out, out] });
    closeSync(out);
    child.unref();
    wrapper = child;
    writeFileSync(wrapperPidFile, String(child.pid));
    await ctl(['wait', '--pid', String(child.pid), '--timeout', String(START_TIMEOUT_S)], (START_TIMEOUT_S + 10) * 1000).catch((err: unknown) => {
      throw new Error(`RabbitMQ node ${nodeName} did not start: ${bootFailure(dir)}`, { cause: err });
    });
  };
  /** The server script exits with the VM: once it has, the ports are free for a restart. */
  const waitExited = (): Promise<void> =>
    waitFor(`${nodeName} to exit`, () => wrapper === undefined || wrapper.exitCode !== null || wrapper.signalCode !== null, { timeoutMs: 60_000, intervalMs: 100 });
  const teardown = (): void => {
    killRecordedPids(dir);
    rmSync(dir, { recursive: true, force: true });
  };
  registerTeardown(name, teardown);

  const node: RabbitNode = {
    nodeName,
    port,
    dir,
    amqpUrl: (vhost = '/') => `amqp://guest:guest@127.0.0.1:${port}/${encodeURIComponent(vhost)}`,
    ctl,
    start,
    async stop() {
      await ctl(['stop']);
      await waitExited();
    },
    async stopApp() {
      await ctl(['stop_app']);
    },
    async startApp() {
      await ctl(['start_app']);
    },
    async kill() {
      const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : NaN;
      if (!Number.isInteger(pid)) throw new Error(`no pid file for ${nodeName}`);
      process.kill(pid, 'SIGKILL');
      await waitExited();
    },
    async addVhost(vhost) {
      await ctl(['add_vhost', vhost]);
      await ctl(['set_permissions', '-p', vhost, 'guest', '.*', '.*', '.*']);
    },
    async remove() {
      unregisterTeardown(name);
      teardown();
      await waitExited();
    },
  };
  try {
    await start();
  } catch (err) {
    await node.remove();
    throw err;
  }
  return node;
}

/** What the server printed about its failed boot (the node's directory is removed with it). */
function bootFailure(dir: string): string {
  const out = existsSync(path.join(dir, 'server.out')) ? readFileSync(path.join(dir, 'server.out'), 'utf8') : '';
  const lines = out.split('\n').filter((line) => /ERROR|error:|eaddrinuse|BOOT FAILED|timed out/i.test(line));
  return lines.slice(-3).join(' | ').slice(0, 500) || 'no error printed (still booting when the wait timed out?)';
}

function writeCookie(home: string): void {
  const file = path.join(home, '.erlang.cookie');
  if (existsSync(file)) return;
  mkdirSync(home, { recursive: true });
  writeFileSync(file, `VSE${Date.now()}${Math.random().toString(36).slice(2)}`.toUpperCase(), { mode: 0o400 });
}
