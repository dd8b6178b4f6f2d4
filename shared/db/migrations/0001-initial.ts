// Frozen once merged: later changes go in a new, higher-numbered migration.
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('compute_hosts')
    .addColumn('host', 'text', (col) => col.primaryKey())
    .addColumn('enabled', 'boolean', (col) => col.notNull().defaultTo(true))
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('instances')
    .addColumn('uuid', 'uuid', (col) => col.primaryKey())
    .addColumn('host', 'text', (col) => col.notNull())
    .addColumn('power_state', 'smallint', (col) => col.notNull().check(sql`power_state between 0 and 9`))
    .addColumn('vm_state', 'text', (col) =>
      col
        .notNull()
        .check(
          sql`vm_state in ('active', 'building', 'paused', 'suspended', 'shutoff', 'stopped', 'rescued', 'resized', 'migrating', 'soft-delete', 'deleted', 'error')`,
        ),
    )
    .addColumn('task_state', 'text')
    .addColumn('deleted_at', 'timestamptz')
    .addColumn('power_state_updated_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute();
  // The agents' one query per tick: a host's live rows.
  await db.schema
    .createIndex('instances_host_live_idx')
    .on('instances')
    .columns(['host'])
    .where(sql.ref('deleted_at'), 'is', null)
    .execute();

  await db.schema
    .createTable('change_outbox')
    .addColumn('seq', 'bigserial', (col) => col.primaryKey())
    .addColumn('event_id', 'uuid', (col) => col.notNull().unique())
    .addColumn('routing_key', 'text', (col) => col.notNull())
    .addColumn('payload', 'jsonb', (col) => col.notNull())
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('published_at', 'timestamptz')
    .execute();
  await db.schema
    .createIndex('change_outbox_unpublished_idx')
    .on('change_outbox')
    .columns(['seq'])
    .where(sql.ref('published_at'), 'is', null)
    .execute();

  await db.schema
    .createTable('audit_log')
    .addColumn('event_id', 'uuid', (col) => col.primaryKey())
    .addColumn('instance_uuid', 'uuid', (col) => col.notNull())
    .addColumn('host', 'text', (col) => col.notNull())
    .addColumn('rule', 'text', (col) => col.notNull())
    .addColumn('reason', 'text', (col) => col.notNull())
    .addColumn('before_power_state', 'smallint', (col) => col.notNull())
    .addColumn('after_power_state', 'smallint', (col) => col.notNull())
    .addColumn('before_vm_state', 'text', (col) => col.notNull())
    .addColumn('after_vm_state', 'text', (col) => col.notNull())
    .addColumn('observation_id', 'uuid', (col) => col.notNull())
    .addColumn('observed_at', 'timestamptz', (col) => col.notNull())
    .addColumn('committed_at', 'timestamptz', (col) => col.notNull())
    .addColumn('recorded_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .createIndex('audit_log_instance_idx')
    .on('audit_log')
    .columns(['instance_uuid', 'committed_at'])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['audit_log', 'change_outbox', 'instances', 'compute_hosts']) {
    await db.schema.dropTable(table).ifExists().execute();
  }
}
