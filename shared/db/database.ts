/** The typed shape of virtsync's tables, as kysely sees them. Columns are snake_case. */
import type { ColumnType, Generated, Insertable, Kysely, Selectable } from 'kysely';
import type { LivenessState } from '../messages/host-liveness.ts';
import type { PowerState } from '../power-state.ts';
import type { VmState } from '../vm-state.ts';

type Timestamp = ColumnType<Date, Date | string, Date | string>;
type CreatedAt = ColumnType<Date, Date | string | undefined, never>;

export interface ComputeHostsTable {
  host: string;
  enabled: ColumnType<boolean, boolean | undefined, boolean>;
  created_at: CreatedAt;
}

export interface InstancesTable {
  uuid: string;
  host: string;
  power_state: PowerState;
  vm_state: VmState;
  /** An operation the cloud has in progress (Nova's task_state). */
  task_state: string | null;
  /** Soft delete, as Nova keeps deleted rows. */
  deleted_at: Timestamp | null;
  /** Deprecated (virtsync's bookkeeping of the previous release, kept during the rolling upgrade; see instance_sync_state). */
  power_state_updated_at: Timestamp | null;
  /** Deprecated, as power_state_updated_at. */
  missed_reports: ColumnType<number, number | undefined, number>;
  /** Deprecated, as power_state_updated_at. */
  last_missed_at: Timestamp | null;
  created_at: CreatedAt;
  updated_at: ColumnType<Date, Date | string | undefined, Date | string>;
}

/** virtsync's own bookkeeping per instance (the cloud's instances table holds only the cloud's columns). */
export interface InstanceSyncStateTable {
  uuid: string;
  look_host: string | null;
  /** bigint: node-postgres returns it as a string. */
  look_epoch: ColumnType<string | null, number | null, number | null>;
  look_seq: ColumnType<string | null, number | null, number | null>;
  written_power_state: PowerState | null;
  written_vm_state: VmState | null;
  missed_reports: ColumnType<number, number | undefined, number>;
  observed_at: Timestamp | null;
  updated_at: ColumnType<Date, Date | string | undefined, Date | string>;
}

/**
 * Report-only mode's shadow (migration 0009): per instance, the row as the writer would have
 * left it and its bookkeeping, with the cloud's row (`base_*`) the entry was derived from.
 */
export interface InstanceSyncShadowTable {
  uuid: string;
  base_host: string;
  base_power_state: PowerState;
  base_vm_state: VmState;
  base_task_state: string | null;
  base_deleted: boolean;
  shadow_power_state: PowerState;
  shadow_vm_state: VmState;
  missed_reports: ColumnType<number, number | undefined, number>;
  look_host: string | null;
  /** bigint: node-postgres returns it as a string. */
  look_epoch: ColumnType<string | null, number | null, number | null>;
  look_seq: ColumnType<string | null, number | null, number | null>;
  updated_at: ColumnType<Date, Date | string | undefined, Date | string>;
}

/** Committed changes waiting to be (or already) published; written in the writer's transaction. */
export interface ChangeOutboxTable {
  seq: Generated<string>;
  event_id: string;
  routing_key: string;
  payload: ColumnType<unknown, string, never>;
  /** The AMQP `type` the relay publishes the row with: a change event or a proposal (0009). */
  message_type: ColumnType<string, string | undefined, never>;
  created_at: CreatedAt;
  published_at: Timestamp | null;
  /** When a relay claimed the row to publish it; a claim past its time-to-live may be taken over. */
  locked_at: Timestamp | null;
  locked_by: string | null;
}

/** Append-only trail of committed changes, one row per change event. */
export interface AuditLogTable {
  event_id: string;
  instance_uuid: string;
  host: string;
  rule: string;
  reason: string;
  before_power_state: PowerState;
  after_power_state: PowerState;
  before_vm_state: VmState;
  after_vm_state: VmState;
  observation_id: string;
  observed_at: Timestamp;
  committed_at: Timestamp;
  recorded_at: CreatedAt;
}

/** The newest sync report of each host. */
export interface HostSyncReportsTable {
  host: string;
  tick_id: string | null;
  trigger: string;
  outcome: string;
  error: string | null;
  started_at: Timestamp;
  duration_ms: number;
  report: ColumnType<unknown, string, string>;
  received_at: ColumnType<Date, Date | string | undefined, Date | string>;
  look_epoch: ColumnType<string | null, number | null | undefined, number | null>;
  look_seq: ColumnType<string | null, number | null | undefined, number | null>;
}

/** Which host an agent's database login may read (migration 0008; written by `virtsync hosts add`). */
export interface AgentLoginsTable {
  login: string;
  host: string;
}

/** What the audit subscriber received from each host, stamped with the database's clock. */
export interface HostReportReceiptsTable {
  host: string;
  last_received_at: Timestamp;
  last_outcome: string;
  last_synced_at: Timestamp | null;
  consecutive_failures: number;
  /** bigint: pg returns it as a string. */
  last_counted_cycle: ColumnType<string | null, number | null, number | null>;
}


/** Each enabled host's liveness, kept by the tick producer's leader. */
export interface HostLivenessTable {
  host: string;
  state: LivenessState;
  since: ColumnType<Date, Date | string | undefined, Date | string>;
  tracked_since: ColumnType<Date, Date | string | undefined, never>;
  reason: string;
}

/** Every liveness transition, stored and published from here (an outbox). */
export interface HostLivenessTransitionsTable {
  seq: Generated<string>;
  transition_id: string;
  host: string;
  from_state: LivenessState;
  to_state: LivenessState;
  changed_at: CreatedAt;
  payload: ColumnType<unknown, string, never>;
  published_at: Timestamp | null;
}

/** Pipeline-level health, one row per component judged (`report-path`). */
export interface PipelineHealthTable {
  component: string;
  state: string;
  since: ColumnType<Date, Date | string | undefined, Date | string>;
  detail: string;
}

export interface Database {
  compute_hosts: ComputeHostsTable;
  agent_logins: AgentLoginsTable;
  instances: InstancesTable;
  instance_sync_state: InstanceSyncStateTable;
  instance_sync_shadow: InstanceSyncShadowTable;
  change_outbox: ChangeOutboxTable;
  audit_log: AuditLogTable;
  host_sync_reports: HostSyncReportsTable;
  host_report_receipts: HostReportReceiptsTable;
  host_liveness: HostLivenessTable;
  host_liveness_transitions: HostLivenessTransitionsTable;
  pipeline_health: PipelineHealthTable;
}

export type InstanceRow = Selectable<InstancesTable>;
export type NewInstance = Insertable<InstancesTable>;

/** What query functions take first: the pool, or a transaction the caller owns (a transaction is a Kysely). */
export type Db = Kysely<Database>;

