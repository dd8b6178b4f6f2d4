/**
 * Every Prometheus metric virtsync's services update. They are created unregistered; each
 * service serves only its own on a registry of its own (SERVICE_METRICS, used by
 * metrics-registry.ts). Labels are bounded: rule, state, queue, trigger, outcome, kind,
 * breaker; `host` only on gauges (one series per host at most, never on a histogram: the
 * agent's breakers and watchers, the liveness gauges);
 * never an instance.
 */
import { Counter, Gauge, Histogram, type Metric } from 'prom-client';

// Registered per service, not globally.
const registers: [] = [];

// Agent
export const hostSyncDuration = new Histogram({
  name: 'virtsync_host_sync_duration_seconds',
  help: 'Duration of one host sync (rows read, libvirt read, observations published)',
  labelNames: ['outcome'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers,
});
export const instancesCompared = new Counter({
  name: 'virtsync_instances_compared_total',
  help: 'Rows compared with a domain the hypervisor has',
  registers,
});
export const discrepanciesFound = new Counter({
  name: 'virtsync_discrepancies_found_total',
  help: 'What the agents found: drifted (other state), missing (unknown to the hypervisor), unknown (domain with no row)',
  labelNames: ['kind'] as const,
  registers,
});
export const countMismatches = new Counter({
  name: 'virtsync_count_mismatches_total',
  help: 'Host syncs where the row count and the domain count differ (the seed\'s warning)',
  registers,
});
export const observationsPublished = new Counter({
  name: 'virtsync_observations_published_total',
  help: 'Observations published, by trigger (tick or lifecycle event)',
  labelNames: ['trigger'] as const,
  registers,
});
export const lifecycleWatcherUp = new Gauge({
  name: 'virtsync_lifecycle_watcher_up',
  help: "1 while the host's libvirt lifecycle event watcher (virsh event) runs, 0 while it is restarting",
  labelNames: ['host'] as const,
  registers,
});
export const tickLag = new Histogram({
  name: 'virtsync_tick_lag_seconds',
  help: 'Time from a tick\'s scheduled slot to its host sync starting',
  buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300],
  registers,
});

// Producer
export const ticksPublished = new Counter({ name: 'virtsync_ticks_published_total', help: 'Ticks published', registers });
export const isLeader = new Gauge({ name: 'virtsync_tick_producer_leader', help: '1 while this producer holds the leader lock', registers });
// Host liveness: every producer exports these from the database, so a leader change moves nothing.
export const hostLastSuccessfulSync = new Gauge({
  name: 'virtsync_host_last_successful_sync_timestamp_seconds',
  help: 'When the newest synced report of the host was received (database clock)',
  labelNames: ['host'] as const,
  registers,
});
export const hostsByLiveness = new Gauge({
  name: 'virtsync_hosts',
  help: 'Enabled hosts by liveness state (healthy, failing, unreachable)',
  labelNames: ['liveness'] as const,
  registers,
});
export const reportPathSilent = new Gauge({
  name: 'virtsync_report_path_silent',
  help: '1 while most hosts are silent together: the report path is down, no host is declared unreachable',
  registers,
});

// Consumers (writer, audit subscriber, agent's ticks)
export const messagesConsumed = new Counter({
  name: 'virtsync_messages_consumed_total',
  help: 'Messages taken from a queue and processed (acked after their write)',
  labelNames: ['queue'] as const,
  registers,
});
export const messagesDeadLettered = new Counter({
  name: 'virtsync_messages_dead_lettered_total',
  help: 'Messages rejected to the dead-letter queue, by the queue they came from',
  labelNames: ['queue'] as const,
  registers,
});

export const deadLetterQueueMessages = new Gauge({
  name: 'virtsync_dead_letter_queue_messages',
  help: 'Messages in the dead-letter queue, as the broker last reported (dead-lettered by virtsync or by the broker)',
  registers,
});

// Writer
export const writerDecisions = new Counter({
  name: 'virtsync_writer_decisions_total',
  help: 'Observations decided by the writer, by rule',
  labelNames: ['rule'] as const,
  registers,
});
export const changesCommitted = new Counter({
  name: 'virtsync_changes_committed_total',
  help: 'Changes committed to instances, by new power state',
  labelNames: ['power_state'] as const,
  registers,
});
export const changesProposed = new Counter({
  name: 'virtsync_changes_proposed_total',
  help: 'Changes a report-only writer (WRITER_MODE=report-only) decided on and published as proposals instead of writing, by new power state',
  labelNames: ['power_state'] as const,
  registers,
});
export const writerBatchSize = new Histogram({
  name: 'virtsync_writer_batch_size',
  help: 'Observations per committed batch',
  buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000],
  registers,
});
export const writerCommitDuration = new Histogram({
  name: 'virtsync_writer_commit_seconds',
  help: 'Time to commit one batch (lock, decide, update, outbox)',
  buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  registers,
});
export const unexpectedStops = new Counter({
  name: 'virtsync_unexpected_stops_total',
  help: 'Instances the cloud had running that stopped or crashed with no operation of the cloud in progress, committed (CloudStack\'s "stopped unexpectedly")',
  labelNames: ['power_state'] as const,
  registers,
});
export const agentClockOffset = new Gauge({
  name: 'virtsync_agent_clock_offset_seconds',
  help: "An agent's stamp minus the writer's clock at commit, newest per observing host (negative: behind, or observations delayed); shown, never used to order",
  labelNames: ['host'] as const,
  registers,
});
export const outboxBacklog = new Gauge({
  name: 'virtsync_outbox_backlog',
  help: 'Committed changes not yet published, as of the relay\'s last pass',
  registers,
});

// Everyone
export const breakerState = new Gauge({
  name: 'virtsync_breaker_state',
  help: 'Circuit breaker state: 0 closed, 1 half-open, 2 open. host is empty for breakers that are not a host\'s',
  labelNames: ['breaker', 'host'] as const,
  registers,
});
export const brokerConnections = new Counter({
  name: 'virtsync_broker_connections_total',
  help: 'Broker connections made; more than one means reconnects',
  registers,
});
export const brokerDisconnects = new Counter({
  name: 'virtsync_broker_disconnects_total',
  help: 'Broker connections lost',
  registers,
});

const CONSUMER_METRICS = [messagesConsumed, messagesDeadLettered];
const CONNECTION_METRICS = [breakerState, brokerConnections, brokerDisconnects];

/** What each service serves besides the process metrics and virtsync_build_info. */
export const SERVICE_METRICS: Readonly<Record<'tick-producer' | 'sync-agent' | 'state-writer' | 'audit-subscriber', readonly Metric[]>> = {
  // Every producer, leader or standby, exports the liveness gauges.
  'tick-producer': [ticksPublished, isLeader, hostLastSuccessfulSync, hostsByLiveness, reportPathSilent, ...CONNECTION_METRICS],
  'sync-agent': [
    hostSyncDuration,
    instancesCompared,
    discrepanciesFound,
    countMismatches,
    observationsPublished,
    lifecycleWatcherUp,
    tickLag,
    ...CONSUMER_METRICS,
    ...CONNECTION_METRICS,
  ],
  'state-writer': [writerDecisions, changesCommitted, changesProposed, unexpectedStops, agentClockOffset, deadLetterQueueMessages, writerBatchSize, writerCommitDuration, outboxBacklog, ...CONSUMER_METRICS, ...CONNECTION_METRICS],
  'audit-subscriber': [...CONSUMER_METRICS, ...CONNECTION_METRICS],
};
