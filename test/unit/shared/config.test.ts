import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  auditSubscriberEnv,
  loadConfig,
  stateWriterEnv,
  syncAgentEnv,
  tickProducerEnv,
  toolsEnv,
} from '../../../shared/config.ts';
import { brokerUrls } from '../../../shared/bus/broker-urls.ts';
import { ConfigError } from '../../../shared/errors.ts';

const COMMON_DEFAULTS = {
  databaseUrl: 'postgres://postgres@127.0.0.1:5432/virtsync',
  amqpUrl: 'amqp://guest:guest@127.0.0.1:5672/',
  logLevel: 'info',
  shutdownTimeoutMs: 10_000,
  databaseTimeoutMs: 30_000,
  breakerResetMs: 30_000,
  httpPort: 9464,
  amqpTls: undefined,
  databaseTls: undefined,
  busTopology: 'declare',
};

/** Asserts a ConfigError whose message names every variable in `names`. */
function assertConfigError(fn: () => unknown, names: string[]): string {
  let message = '';
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ConfigError, 'a ConfigError');
    assert.equal(err.code, 'VS_INVALID_CONFIG');
    assert.equal(err.retryable, false);
    message = err.message;
    return true;
  });
  for (const name of names) assert.match(message, new RegExp(`\\b${name}: `), `${name} is named in:\n${message}`);
  return message;
}

describe('loadConfig: defaults', () => {
  test('tick producer: every default from an empty environment', () => {
    assert.deepEqual(loadConfig(tickProducerEnv, {}), {
      ...COMMON_DEFAULTS,
      tickIntervalMs: 600_000,
      maxCycles: 0,
      liveness: { failingAfterSyncs: 3, unreachableAfterIntervals: 3, reportPathSilentFraction: 0.5, reportPathSilentMinHosts: 2 },
    });
  });

  test('state writer: every default from an empty environment', () => {
    assert.deepEqual(loadConfig(stateWriterEnv, {}), {
      ...COMMON_DEFAULTS,
      batchSize: 500,
      batchLingerMs: 10,
      maxInFlight: 2,
      outboxPollMs: 1_000,
      outboxRetentionMs: 86_400_000,
      policy: { missingGraceCycles: 1 },
      mode: 'write',
      publishers: { required: false, fleet: [] },
      clockSkewWarnMs: 60_000,
      staleSkipsWarn: 10,
      unreachableHosts: { policy: 'report-only', afterMs: 600_000, checkMs: 30_000 },
    });
  });

  test('audit subscriber: every default from an empty environment', () => {
    assert.deepEqual(loadConfig(auditSubscriberEnv, {}), { ...COMMON_DEFAULTS, batchSize: 500, batchLingerMs: 10 });
  });

  test('tools: the common defaults', () => {
    assert.deepEqual(loadConfig(toolsEnv, {}), COMMON_DEFAULTS);
  });

  test('sync agent: defaults apply around the required AGENT_HOSTS', () => {
    assert.deepEqual(loadConfig(syncAgentEnv, { AGENT_HOSTS: 'compute-1' }), {
      ...COMMON_DEFAULTS,
      hosts: ['compute-1'],
      libvirtUri: 'qemu:///system',
      libvirtConcurrency: 16,
      libvirtTimeoutMs: 30_000,
      libvirtReconnectWaitMs: 10_000,
      hostConcurrency: 16,
      lifecycleEvents: true,
      eventDebounceMs: 1_000,
      startupSync: true,
      startupSyncWindowMs: 5_000,
      clockOffsetMs: 0,
    });
  });

  test('set variables override defaults and numbers are coerced', () => {
    const config = loadConfig(tickProducerEnv, {
      DATABASE_URL: 'postgres://u:p@db.example:5433/other',
      LOG_LEVEL: 'debug',
      SHUTDOWN_TIMEOUT_MS: '2500',
      TICK_INTERVAL_MS: '1000',
      TICK_MAX_CYCLES: '1',
    });
    assert.equal(config.databaseUrl, 'postgres://u:p@db.example:5433/other');
    assert.equal(config.logLevel, 'debug');
    assert.equal(config.shutdownTimeoutMs, 2_500);
    assert.equal(config.tickIntervalMs, 1_000);
    assert.equal(config.maxCycles, 1);
  });

  test('unrelated variables are ignored', () => {
    assert.deepEqual(loadConfig(toolsEnv, { PATH: '/usr/bin', HOME: '/root' }), COMMON_DEFAULTS);
  });

  test('the result is frozen', () => {
    const config = loadConfig(tickProducerEnv, {});
    assert.ok(Object.isFrozen(config));
    assert.throws(() => {
      (config as { tickIntervalMs: number }).tickIntervalMs = 1;
    }, TypeError);
  });
});

describe('loadConfig: AGENT_HOSTS', () => {
  const parsed: { value: string; hosts: string[] }[] = [
    { value: 'a, b,c', hosts: ['a', 'b', 'c'] },
    { value: 'compute-1', hosts: ['compute-1'] },
    { value: ' compute-1.example.org ,compute_2, ', hosts: ['compute-1.example.org', 'compute_2'] },
    { value: 'a,,b', hosts: ['a', 'b'] },
  ];
  for (const { value, hosts } of parsed) {
    test(`${JSON.stringify(value)} → ${JSON.stringify(hosts)}`, () => {
      assert.deepEqual(loadConfig(syncAgentEnv, { AGENT_HOSTS: value }).hosts, hosts);
    });
  }

  test('is required', () => {
    assertConfigError(() => loadConfig(syncAgentEnv, {}), ['AGENT_HOSTS']);
  });

  for (const value of ['', ' , ,']) {
    test(`${JSON.stringify(value)} is rejected: needs at least one host`, () => {
      const message = assertConfigError(() => loadConfig(syncAgentEnv, { AGENT_HOSTS: value }), ['AGENT_HOSTS']);
      assert.match(message, /needs at least one host/);
    });
  }

  for (const value of ['compute 1', 'a,b*', 'compute-#', 'a,.b']) {
    test(`an invalid host in ${JSON.stringify(value)} is rejected`, () => {
      const message = assertConfigError(() => loadConfig(syncAgentEnv, { AGENT_HOSTS: value }), ['AGENT_HOSTS\\.\\d+']);
      assert.match(message, /not a valid host name/);
    });
  }
});

describe('loadConfig: TLS and identities', () => {
  // Any file that exists stands in for a mounted CA, certificate or key.
  const file = fileURLToPath(import.meta.url);

  test('amqps:// with a CA, a client certificate and a database CA', () => {
    const config = loadConfig(toolsEnv, {
      AMQP_URL: 'amqps://broker.example/virtsync',
      AMQP_CA_FILE: file,
      AMQP_CERT_FILE: file,
      AMQP_KEY_FILE: file,
      DATABASE_CA_FILE: file,
      BUS_TOPOLOGY: 'verify',
    });
    assert.deepEqual(config.amqpTls, { caFile: file, certFile: file, keyFile: file });
    assert.deepEqual(config.databaseTls, { caFile: file, certFile: undefined, keyFile: undefined });
    assert.equal(config.busTopology, 'verify');
  });

  const refused: { name: string; env: Record<string, string>; variable: string; says: RegExp }[] = [
    { name: 'a CA with plain-text amqp://', env: { AMQP_URL: 'amqp://u:s3cret@broker/', AMQP_CA_FILE: file }, variable: 'AMQP_URL', says: /must be amqps:\/\/ \(TLS\)/ },
    { name: 'amqps:// without a CA', env: { AMQP_URL: 'amqps://u:s3cret@broker/' }, variable: 'AMQP_CA_FILE', says: /CA to verify the broker/ },
    { name: 'a certificate without its key', env: { DATABASE_CA_FILE: file, DATABASE_CERT_FILE: file }, variable: 'DATABASE_KEY_FILE', says: /go together/ },
    { name: 'a client certificate without TLS', env: { DATABASE_CERT_FILE: file, DATABASE_KEY_FILE: file }, variable: 'DATABASE_CA_FILE', says: /needs TLS/ },
    { name: 'a file that is not there', env: { DATABASE_CA_FILE: '/nonexistent/ca.crt' }, variable: 'DATABASE_CA_FILE', says: /no such file/ },
  ];
  for (const { name, env, variable, says } of refused) {
    test(`${name} is refused, naming ${variable}, without quoting a password`, () => {
      const message = assertConfigError(() => loadConfig(toolsEnv, env), [variable]);
      assert.match(message, says);
      assert.doesNotMatch(message, /s3cret/);
    });
  }

  test('the writer: publisher checks on, with the simulator allowed to report on any host', () => {
    const config = loadConfig(stateWriterEnv, { WRITER_REQUIRE_PUBLISHER: 'true', WRITER_FLEET_PUBLISHERS: 'virtsync-simulator, demo' });
    assert.deepEqual(config.publishers, { required: true, fleet: ['virtsync-simulator', 'demo'] });
  });

  test('the writer: report-only mode, and no other', () => {
    assert.equal(loadConfig(stateWriterEnv, { WRITER_MODE: 'report-only' }).mode, 'report-only');
    assertConfigError(() => loadConfig(stateWriterEnv, { WRITER_MODE: 'dry-run' }), ['WRITER_MODE']);
  });

  test('the writer: the unreachable-host policy, report-only or nostate', () => {
    const config = loadConfig(stateWriterEnv, { UNREACHABLE_HOST_POLICY: 'nostate', UNREACHABLE_NOSTATE_AFTER_MS: '1800000', UNREACHABLE_CHECK_MS: '60000' });
    assert.deepEqual(config.unreachableHosts, { policy: 'nostate', afterMs: 1_800_000, checkMs: 60_000 });
    assertConfigError(() => loadConfig(stateWriterEnv, { UNREACHABLE_HOST_POLICY: 'evacuate' }), ['UNREACHABLE_HOST_POLICY']);
  });
});

describe('loadConfig: bad values', () => {
  test('every bad variable is reported together in one ConfigError', () => {
    const message = assertConfigError(
      () => loadConfig(tickProducerEnv, { TICK_INTERVAL_MS: 'abc', LOG_LEVEL: 'loud' }),
      ['TICK_INTERVAL_MS', 'LOG_LEVEL'],
    );
    assert.match(message, /^invalid configuration:\n/);
  });

  test('bad variables of the common and the service schema are reported together', () => {
    assertConfigError(
      () =>
        loadConfig(syncAgentEnv, {
          DATABASE_URL: 'not a url',
          SHUTDOWN_TIMEOUT_MS: '0',
          AGENT_HOSTS: 'bad host',
          LIBVIRT_CONCURRENCY: '-1',
          AGENT_HOST_CONCURRENCY: '1.5',
        }),
      ['DATABASE_URL', 'SHUTDOWN_TIMEOUT_MS', 'AGENT_HOSTS\\.0', 'LIBVIRT_CONCURRENCY', 'AGENT_HOST_CONCURRENCY'],
    );
  });

  const single: { name: string; schema: Parameters<typeof loadConfig>[0]; env: Record<string, string> }[] = [
    { name: 'TICK_INTERVAL_MS', schema: tickProducerEnv, env: { TICK_INTERVAL_MS: '0' } },
    { name: 'TICK_INTERVAL_MS', schema: tickProducerEnv, env: { TICK_INTERVAL_MS: '' } },
    { name: 'TICK_MAX_CYCLES', schema: tickProducerEnv, env: { TICK_MAX_CYCLES: '-1' } },
    { name: 'LOG_LEVEL', schema: toolsEnv, env: { LOG_LEVEL: 'INFO' } },
    { name: 'AMQP_URL', schema: toolsEnv, env: { AMQP_URL: 'localhost' } },
    { name: 'AMQP_URL', schema: toolsEnv, env: { AMQP_URL: 'amqp://a:5672/,localhost' } },
    { name: 'AMQP_URL', schema: toolsEnv, env: { AMQP_URL: ' , ' } },
    { name: 'WRITER_BATCH_SIZE', schema: stateWriterEnv, env: { WRITER_BATCH_SIZE: 'many' } },
    { name: 'OUTBOX_POLL_MS', schema: stateWriterEnv, env: { OUTBOX_POLL_MS: '0.5' } },
    { name: 'WRITER_MAX_IN_FLIGHT', schema: stateWriterEnv, env: { WRITER_MAX_IN_FLIGHT: '0' } },
    { name: 'WRITER_MAX_IN_FLIGHT', schema: stateWriterEnv, env: { WRITER_MAX_IN_FLIGHT: '1.5' } },
    // Each batch in flight holds one of the pool's 10 connections, the event slot one more; the relay, the gauges and the unreachable-host policy need some too.
    { name: 'WRITER_MAX_IN_FLIGHT', schema: stateWriterEnv, env: { WRITER_MAX_IN_FLIGHT: '8' } },
    { name: 'AUDIT_BATCH_LINGER_MS', schema: auditSubscriberEnv, env: { AUDIT_BATCH_LINGER_MS: '-5' } },
    { name: 'LIBVIRT_URI', schema: syncAgentEnv, env: { AGENT_HOSTS: 'a', LIBVIRT_URI: '' } },
    { name: 'LIBVIRT_RECONNECT_WAIT_MS', schema: syncAgentEnv, env: { AGENT_HOSTS: 'a', LIBVIRT_RECONNECT_WAIT_MS: '-1' } },
    // The wait is part of one libvirt call: it must end before the breaker's time-out does.
    { name: 'LIBVIRT_RECONNECT_WAIT_MS', schema: syncAgentEnv, env: { AGENT_HOSTS: 'a', LIBVIRT_TIMEOUT_MS: '3000', LIBVIRT_RECONNECT_WAIT_MS: '3000' } },
  ];
  for (const { name, schema, env } of single) {
    test(`${name}=${JSON.stringify(Object.values(env).at(-1))} is rejected by name`, () => {
      assertConfigError(() => loadConfig(schema, env), [name]);
    });
  }
});

test('AMQP_URL takes a cluster\'s nodes comma-separated, kept as given for the bus connection to split', () => {
  const urls = 'amqp://guest:guest@127.0.0.1:21001/v, amqp://guest:guest@127.0.0.1:21003/v';
  assert.equal(loadConfig(toolsEnv, { AMQP_URL: urls }).amqpUrl, urls);
  assert.deepEqual(brokerUrls(urls), ['amqp://guest:guest@127.0.0.1:21001/v', 'amqp://guest:guest@127.0.0.1:21003/v']);
});
