/**
 * Every setting of every service, read from the environment once, validated with zod,
 * defaults in this one file. A bad value names its variable; all of them are reported
 * together before anything connects. Nothing else reads process.env.
 */
import { existsSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from './errors.ts';
import { hostNameSchema } from './host-name.ts';
import { brokerUrls } from './bus/broker-urls.ts';

const positiveInt = z.coerce.number().int().positive();

/** A URL of one of these schemes: an http:// AMQP_URL is a configuration error, not a broker that cannot be reached. */
function urlWithScheme(schemes: readonly string[]) {
  return z
    .string()
    .url()
    .refine((value) => !URL.canParse(value) || schemes.includes(new URL(value).protocol), `must start with ${schemes.map((scheme) => `${scheme}//`).join(' or ')}`);
}

/** A file the operator mounts (a CA, a certificate, a key): it must exist when the service starts. */
const mountedFile = z.string().min(1).refine(existsSync, 'no such file');

/** What TLS to a dependency needs: the CA that signs its server certificate, and our client certificate if we log in with one. */
export interface TlsFiles {
  caFile: string;
  certFile: string | undefined;
  keyFile: string | undefined;
}

function tlsFiles(caFile: string | undefined, certFile: string | undefined, keyFile: string | undefined): TlsFiles | undefined {
  return caFile === undefined ? undefined : { caFile, certFile, keyFile };
}

const commonEnv = z.object({
  DATABASE_URL: urlWithScheme(['postgres:', 'postgresql:']).default('postgres://postgres@127.0.0.1:5432/virtsync'),
  /** One broker URL, or every node of a cluster comma-separated: a connection tries them in turn (shared/bus/connect.ts). */
  AMQP_URL: z
    .string()
    .default('amqp://guest:guest@127.0.0.1:5672/')
    .refine((value) => brokerUrls(value).length > 0 && brokerUrls(value).every((url) => URL.canParse(url)), 'must be a URL or a comma-separated list of URLs')
    .refine((value) => brokerUrls(value).every((url) => !URL.canParse(url) || ['amqp:', 'amqps:'].includes(new URL(url).protocol)), 'must start with amqp:// or amqps://'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** How long a graceful shutdown may take before the process exits non-zero. */
  SHUTDOWN_TIMEOUT_MS: positiveInt.default(10_000),
  /** A database call taking longer counts as a failure for its circuit breaker. */
  DATABASE_TIMEOUT_MS: positiveInt.default(30_000),
  /** How long an open circuit breaker refuses calls before testing the dependency again. */
  BREAKER_RESET_MS: positiveInt.default(30_000),
  /** Port of /metrics, /healthz and /readyz; 0 picks a free port (logged). */
  HTTP_PORT: z.coerce.number().int().min(0).max(65_535).default(9464),
  /** TLS to RabbitMQ (AMQP_URL must be amqps://): the CA that signs the broker's certificate... */
  AMQP_CA_FILE: mountedFile.optional(),
  /** ...and this process's client certificate and key: with no password in AMQP_URL, the certificate's CN is the login. */
  AMQP_CERT_FILE: mountedFile.optional(),
  AMQP_KEY_FILE: mountedFile.optional(),
  /** TLS to PostgreSQL, verified like sslmode=verify-full: the CA that signs the server's certificate... */
  DATABASE_CA_FILE: mountedFile.optional(),
  /** ...and the client certificate and key of a certificate login (agents: CN = host). */
  DATABASE_CERT_FILE: mountedFile.optional(),
  DATABASE_KEY_FILE: mountedFile.optional(),
  /**
   * `verify`: the bus topology is provisioned by `virtsync bus setup` and `virtsync hosts add`, and the
   * service only checks it exists (production: services hold no configure permission). `declare`: the
   * service declares what it uses (development, tests, the demo).
   */
  BUS_TOPOLOGY: z.enum(['declare', 'verify']).default('declare'),
});

/** Settings that are fine one by one but not together; named by variable like every other problem. */
function checkTls(env: z.infer<typeof commonEnv>, context: z.RefinementCtx): void {
  const urls = brokerUrls(env.AMQP_URL);
  const tlsNodes = urls.filter((url) => url.startsWith('amqps:')).length;
  if (tlsNodes > 0 && tlsNodes < urls.length) {
    context.addIssue({ code: 'custom', path: ['AMQP_URL'], message: 'mixes amqps:// and amqp:// nodes: all TLS or none' });
  }
  const amqps = tlsNodes > 0 && tlsNodes === urls.length;
  if (env.AMQP_CA_FILE !== undefined && !amqps) {
    context.addIssue({ code: 'custom', path: ['AMQP_URL'], message: 'AMQP_CA_FILE is set, so AMQP_URL must be amqps:// (TLS), not plain-text amqp://' });
  }
  if (amqps && env.AMQP_CA_FILE === undefined) {
    context.addIssue({ code: 'custom', path: ['AMQP_CA_FILE'], message: 'AMQP_URL is amqps://: the CA to verify the broker with is required' });
  }
  for (const [cert, key] of [['AMQP_CERT_FILE', 'AMQP_KEY_FILE'], ['DATABASE_CERT_FILE', 'DATABASE_KEY_FILE']] as const) {
    if ((env[cert] === undefined) !== (env[key] === undefined)) context.addIssue({ code: 'custom', path: [key], message: `${cert} and ${key} go together` });
  }
  if (env.DATABASE_CERT_FILE !== undefined && env.DATABASE_CA_FILE === undefined) {
    context.addIssue({ code: 'custom', path: ['DATABASE_CA_FILE'], message: 'a client certificate needs TLS: set the CA too' });
  }
}

function common(env: z.infer<typeof commonEnv>) {
  return {
    databaseUrl: env.DATABASE_URL,
    amqpUrl: env.AMQP_URL,
    logLevel: env.LOG_LEVEL,
    shutdownTimeoutMs: env.SHUTDOWN_TIMEOUT_MS,
    databaseTimeoutMs: env.DATABASE_TIMEOUT_MS,
    breakerResetMs: env.BREAKER_RESET_MS,
    httpPort: env.HTTP_PORT,
    amqpTls: tlsFiles(env.AMQP_CA_FILE, env.AMQP_CERT_FILE, env.AMQP_KEY_FILE),
    databaseTls: tlsFiles(env.DATABASE_CA_FILE, env.DATABASE_CERT_FILE, env.DATABASE_KEY_FILE),
    busTopology: env.BUS_TOPOLOGY,
  };
}

export type CommonConfig = ReturnType<typeof common>;

const booleanFlag = z.enum(['true', 'false', '1', '0', 'yes', 'no']).transform((value) => ['true', '1', 'yes'].includes(value));

const hostList = z
  .string()
  .transform((value) => value.split(',').map((host) => host.trim()).filter((host) => host !== ''))
  .pipe(z.array(hostNameSchema).min(1, 'needs at least one host'));

export const tickProducerEnv = commonEnv
  .extend({
    /** The seed's default: 60 s × 10 ticks. */
    TICK_INTERVAL_MS: positiveInt.default(600_000),
    /** Stop after this many cycles; 0 runs until stopped (the demo runs one). */
    TICK_MAX_CYCLES: z.coerce.number().int().min(0).default(0),
    /** A host whose last this many periodic syncs failed or were skipped is `failing`. */
    HOST_FAILING_AFTER: positiveInt.default(3),
    /** A host from which no report was received for this many tick intervals is `unreachable`. */
    HOST_UNREACHABLE_AFTER: positiveInt.default(3),
    /** More than this share of the reachable hosts silent at once means the report path is down, not the hosts. */
    REPORT_PATH_SILENT_FRACTION: z.coerce.number().gt(0).lt(1).default(0.5),
    /** ...and at least this many of them (one silent host in a fleet of one is that host). */
    REPORT_PATH_SILENT_MIN_HOSTS: positiveInt.default(2),
  })
  .superRefine(checkTls)
  .transform((env) => ({
    ...common(env),
    tickIntervalMs: env.TICK_INTERVAL_MS,
    maxCycles: env.TICK_MAX_CYCLES,
    liveness: {
      failingAfterSyncs: env.HOST_FAILING_AFTER,
      unreachableAfterIntervals: env.HOST_UNREACHABLE_AFTER,
      reportPathSilentFraction: env.REPORT_PATH_SILENT_FRACTION,
      reportPathSilentMinHosts: env.REPORT_PATH_SILENT_MIN_HOSTS,
    },
  }));

export const syncAgentEnv = commonEnv
  .extend({
    /** The hosts this agent serves, comma-separated. In production: the one it runs on. */
    AGENT_HOSTS: hostList,
    /** libvirt URI per host; `{host}` is replaced by the host name. */
    LIBVIRT_URI: z.string().min(1).default('qemu:///system'),
    /** libvirt calls in flight per host sync. */
    LIBVIRT_CONCURRENCY: positiveInt.default(16),
    /** A libvirt call taking longer counts as a failure for the host's circuit breaker. */
    LIBVIRT_TIMEOUT_MS: positiveInt.default(30_000),
    /**
     * How long a read waits for a host's libvirtd that is away (its socket absent or refusing, as
     * while it restarts: 0.5-5 s measured on the QEMU lane) before the read fails; 0 fails at
     * once. Part of one libvirt call, so below LIBVIRT_TIMEOUT_MS.
     */
    LIBVIRT_RECONNECT_WAIT_MS: z.coerce.number().int().min(0).default(10_000),
    /** Hosts synced at the same time by this agent: each one mostly waits for broker confirms. */
    AGENT_HOST_CONCURRENCY: positiveInt.default(16),
    /** Watch libvirt lifecycle events (through `virsh event`) and observe a domain as soon as it changes. */
    AGENT_LIFECYCLE_EVENTS: booleanFlag.default(true),
    /** Quiet time after a domain's last lifecycle event before it is observed (a reboot is stop + start). */
    EVENT_DEBOUNCE_MS: z.coerce.number().int().min(0).max(60_000).default(1_000),
    /** Sync each host once at start (and when its libvirt connection is back), without waiting for its tick. */
    AGENT_STARTUP_SYNC: booleanFlag.default(true),
    /** Those syncs start at random moments within this window. */
    AGENT_STARTUP_SYNC_WINDOW_MS: z.coerce.number().int().min(0).max(600_000).default(5_000),
    /** For tests and drills only: shifts the agent's stamps by this much, as a clock set wrong would. Nothing is ordered by them. */
    AGENT_CLOCK_OFFSET_MS: z.coerce.number().int().min(-31_536_000_000).max(31_536_000_000).default(0),
  })
  .superRefine(checkTls)
  .superRefine((env, context) => {
    // The wait runs inside the call the host's breaker times: a longer one would time out first.
    if (env.LIBVIRT_RECONNECT_WAIT_MS >= env.LIBVIRT_TIMEOUT_MS) {
      context.addIssue({ code: 'custom', path: ['LIBVIRT_RECONNECT_WAIT_MS'], message: `must be below LIBVIRT_TIMEOUT_MS (${env.LIBVIRT_TIMEOUT_MS})` });
    }
  })
  .transform((env) => ({
    ...common(env),
    hosts: env.AGENT_HOSTS,
    libvirtUri: env.LIBVIRT_URI,
    libvirtConcurrency: env.LIBVIRT_CONCURRENCY,
    libvirtTimeoutMs: env.LIBVIRT_TIMEOUT_MS,
    libvirtReconnectWaitMs: env.LIBVIRT_RECONNECT_WAIT_MS,
    hostConcurrency: env.AGENT_HOST_CONCURRENCY,
    lifecycleEvents: env.AGENT_LIFECYCLE_EVENTS,
    eventDebounceMs: env.EVENT_DEBOUNCE_MS,
    startupSync: env.AGENT_STARTUP_SYNC,
    startupSyncWindowMs: env.AGENT_STARTUP_SYNC_WINDOW_MS,
    clockOffsetMs: env.AGENT_CLOCK_OFFSET_MS,
  }));

export const stateWriterEnv = commonEnv
  .extend({
    /** Observations per transaction: a batch is committed once it holds this many (whole messages, so up to 249 more). */
    WRITER_BATCH_SIZE: positiveInt.default(500),
    /** How long a partial batch waits for more observations (under load batches fill before it runs out). */
    WRITER_BATCH_LINGER_MS: positiveInt.default(10),
    /**
     * Batch transactions of the tick path in flight at once, plus one kept for lifecycle events;
     * batches in flight never share an instance. Each takes a database connection of the pool's
     * 10, which the outbox relay, the gauges and the unreachable-host policy share: at most 7.
     */
    WRITER_MAX_IN_FLIGHT: positiveInt.max(7).default(2),
    /** How often the outbox relay looks for unpublished changes when not woken by a commit. */
    OUTBOX_POLL_MS: positiveInt.default(1_000),
    /** Published changes stay in the outbox this long (for operators and replays), then the relay deletes them. */
    OUTBOX_RETENTION_MS: positiveInt.default(86_400_000),
    /** Consecutive cycles an instance must be missing before it becomes NOSTATE (1: the seed's behaviour). */
    MISSING_GRACE_CYCLES: positiveInt.default(1),
    /**
     * Observations without an AMQP user_id are dead-lettered (production: every agent's broker user
     * is its host's name, and the broker vouches for user_id). Off for development and tests.
     */
    WRITER_REQUIRE_PUBLISHER: booleanFlag.default(false),
    /** Broker users that may publish observations for any host (the fleet simulator's, the demo's). */
    WRITER_FLEET_PUBLISHERS: z
      .string()
      .default('')
      .transform((value) => value.split(',').map((user) => user.trim()).filter((user) => user !== '')),
    /** An agent's clock this far from the writer's (or its observations this late) is logged at warn, per host. */
    CLOCK_SKEW_WARN_MS: positiveInt.default(60_000),
    /** Stale skips of one host in one batch from which a warn summary is logged (each one is logged at debug). */
    STALE_SKIPS_WARN: positiveInt.default(10),
    /**
     * `write`: decisions are written to instances. `report-only`: decided as usual, nothing written to
     * instances; each change is published as a proposal (`proposed.<host>.<state>`) and kept in a shadow
     * (docs/operations.md, "Rolling out on an existing cloud").
     */
    WRITER_MODE: z.enum(['write', 'report-only']).default('write'),
    /**
     * What happens to the instances of a host the tick producer judged unreachable: `report-only`
     * (the liveness state and its alert say so; the rows stay as they are: without fencing nobody
     * knows what the guests do) or `nostate` (after UNREACHABLE_NOSTATE_AFTER_MS more, power_state
     * NOSTATE with rule host-unreachable, never while the report path is silent).
     */
    UNREACHABLE_HOST_POLICY: z.enum(['report-only', 'nostate']).default('report-only'),
    /** How long a host stays unreachable before the `nostate` policy applies (the database's clock). */
    UNREACHABLE_NOSTATE_AFTER_MS: positiveInt.default(600_000),
    /** How often the writer looks for hosts the `nostate` policy applies to. */
    UNREACHABLE_CHECK_MS: positiveInt.default(30_000),
  })
  .superRefine(checkTls)
  .transform((env) => ({
    ...common(env),
    policy: { missingGraceCycles: env.MISSING_GRACE_CYCLES },
    mode: env.WRITER_MODE,
    clockSkewWarnMs: env.CLOCK_SKEW_WARN_MS,
    staleSkipsWarn: env.STALE_SKIPS_WARN,
    batchSize: env.WRITER_BATCH_SIZE,
    batchLingerMs: env.WRITER_BATCH_LINGER_MS,
    maxInFlight: env.WRITER_MAX_IN_FLIGHT,
    outboxPollMs: env.OUTBOX_POLL_MS,
    outboxRetentionMs: env.OUTBOX_RETENTION_MS,
    publishers: { required: env.WRITER_REQUIRE_PUBLISHER, fleet: env.WRITER_FLEET_PUBLISHERS },
    unreachableHosts: { policy: env.UNREACHABLE_HOST_POLICY, afterMs: env.UNREACHABLE_NOSTATE_AFTER_MS, checkMs: env.UNREACHABLE_CHECK_MS },
  }));

export const auditSubscriberEnv = commonEnv
  .extend({
    AUDIT_BATCH_SIZE: positiveInt.default(500),
    AUDIT_BATCH_LINGER_MS: positiveInt.default(10),
  })
  .superRefine(checkTls)
  .transform((env) => ({
    ...common(env),
    batchSize: env.AUDIT_BATCH_SIZE,
    batchLingerMs: env.AUDIT_BATCH_LINGER_MS,
  }));

export const toolsEnv = commonEnv.superRefine(checkTls).transform(common);

/** What `virtsync hosts add|remove` needs besides the operator's DATABASE_URL and AMQP_URL. */
export const provisioningEnv = z
  .object({
    /** RabbitMQ's management API with an administrator's credentials (https:// in production; a private CA through NODE_EXTRA_CA_CERTS). */
    RABBITMQ_MANAGEMENT_URL: z.string().url().default('http://guest:guest@127.0.0.1:15672/api'),
  })
  .transform((env) => ({ managementUrl: env.RABBITMQ_MANAGEMENT_URL }));

export type ProvisioningConfig = Readonly<z.output<typeof provisioningEnv>>;

export type TickProducerConfig = Readonly<z.output<typeof tickProducerEnv>>;
export type SyncAgentConfig = Readonly<z.output<typeof syncAgentEnv>>;
export type StateWriterConfig = Readonly<z.output<typeof stateWriterEnv>>;
export type WriterMode = StateWriterConfig['mode'];
export type AuditSubscriberConfig = Readonly<z.output<typeof auditSubscriberEnv>>;

/** Parses the environment against a service's schema; throws one ConfigError naming every bad variable. */
export function loadConfig<S extends z.ZodType>(
  schema: S,
  env: Record<string, string | undefined> = process.env,
): Readonly<z.output<S>> {
  const result = schema.safeParse(env);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `  ${issue.path.join('.') || '(environment)'}: ${issue.message}`);
    throw new ConfigError(`invalid configuration:\n${problems.join('\n')}`);
  }
  return deepFreeze(result.data);
}

function deepFreeze<T>(value: T): Readonly<T> {
  if (typeof value === 'object' && value !== null) {
    for (const nested of Object.values(value)) deepFreeze(nested);
    Object.freeze(value);
  }
  return value;
}

/** Each service's environment schema, by service name: what the operator's guide must document. */
export const SERVICE_ENVIRONMENTS = {
  'tick-producer': tickProducerEnv,
  'sync-agent': syncAgentEnv,
  'state-writer': stateWriterEnv,
  'audit-subscriber': auditSubscriberEnv,
} as const;

/** The variable names a service's schema reads. */
export function variablesOf(env: (typeof SERVICE_ENVIRONMENTS)[keyof typeof SERVICE_ENVIRONMENTS]): string[] {
  return Object.keys(env.in.shape);
}
