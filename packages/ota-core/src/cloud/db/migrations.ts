// Versioned schema migrations, applied in order inside one write transaction (SQLite: BEGIN
// IMMEDIATE; PostgreSQL: an advisory lock too, since CREATE TABLE IF NOT EXISTS races there), so
// processes that open the database at the same time apply each migration once. A database from a
// newer otadiff (a version this code does not know) is refused rather than guessed at.

import { sql, type Kysely, type Transaction } from 'kysely';
import type { DatabaseHandle, Engine } from './engine.js';
import { DatabaseError } from './engine.js';
import type { Database } from './schema.js';

interface Migration {
  version: number;
  name: string;
  up(db: Transaction<Database>, engine: Engine): Promise<void>;
}

// Any tables, not only ours: migrations speak of tables that may not exist yet.
type AnyDb = Kysely<Record<string, never>> | Transaction<Record<string, never>>;

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'products, devices, firmware, packages, jobs, per-device job state, workers',
    async up(trx, engine) {
      const db = trx as unknown as AnyDb;
      const big = 'bigint';
      await db.schema.createTable('settings').addColumn('key', 'text', (c) => c.primaryKey()).addColumn('value', 'text', (c) => c.notNull()).execute();
      await db.schema
        .createTable('products')
        .addColumn('product_key', 'text', (c) => c.primaryKey())
        .addColumn('product_secret', 'text', (c) => c.notNull())
        .addColumn('mode', 'text', (c) => c.notNull())
        .addColumn('split_size', 'integer', (c) => c.notNull())
        .addColumn('dict_size', 'integer', (c) => c.notNull())
        .addColumn('created_at', big, (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('devices')
        .addColumn('product_key', 'text', (c) => c.notNull().references('products.product_key'))
        .addColumn('device_name', 'text', (c) => c.notNull())
        .addColumn('device_secret', 'text', (c) => c.notNull())
        .addColumn('created_at', big, (c) => c.notNull())
        .addColumn('version', 'text')
        .addColumn('last_seen', big)
        .addColumn('current_job', 'text')
        .addPrimaryKeyConstraint('devices_pk', ['product_key', 'device_name'])
        .execute();
      await db.schema
        .createTable('firmware')
        .addColumn('product_key', 'text', (c) => c.notNull().references('products.product_key'))
        .addColumn('version', 'text', (c) => c.notNull())
        .addColumn('sha256', 'text', (c) => c.notNull())
        .addColumn('size', big, (c) => c.notNull())
        .addColumn('security_counter', big, (c) => c.notNull())
        .addColumn('allow_downgrade', 'integer', (c) => c.notNull())
        .addColumn('created_at', big, (c) => c.notNull())
        .addPrimaryKeyConstraint('firmware_pk', ['product_key', 'version'])
        .execute();
      await db.schema
        .createTable('packages')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('product_key', 'text', (c) => c.notNull())
        .addColumn('sha256', 'text', (c) => c.notNull())
        .addColumn('md5', 'text', (c) => c.notNull())
        .addColumn('size', big, (c) => c.notNull())
        .addColumn('split_size', 'integer', (c) => c.notNull())
        .addColumn('created_at', big, (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('jobs')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('product_key', 'text', (c) => c.notNull().references('products.product_key'))
        .addColumn('version', 'text', (c) => c.notNull())
        .addColumn('target', 'text', (c) => c.notNull())
        .addColumn('download_protocol', 'text')
        .addColumn('created_at', big, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('jobs_by_product').on('jobs').columns(['product_key', 'created_at']).execute();
      await db.schema
        .createTable('job_devices')
        .addColumn('job_id', 'text', (c) => c.notNull().references('jobs.id'))
        .addColumn('device_name', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('job_devices_pk', ['job_id', 'device_name'])
        .execute();
      await db.schema
        .createTable('device_jobs')
        .addColumn('id', engine === 'postgres' ? 'bigserial' : 'integer', (c) => (engine === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
        .addColumn('job_id', 'text', (c) => c.notNull().references('jobs.id'))
        .addColumn('product_key', 'text', (c) => c.notNull())
        .addColumn('device_name', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('step', 'integer')
        .addColumn('detail', 'text')
        .addColumn('from_version', 'text')
        .addColumn('is_diff', 'integer')
        .addColumn('package_bytes', big)
        .addColumn('pushes', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('worker', 'text')
        .addColumn('created_at', big, (c) => c.notNull())
        .addColumn('queued_at', big)
        .addColumn('notified_at', big)
        .addColumn('updated_at', big, (c) => c.notNull())
        .addColumn('finished_at', big)
        .addUniqueConstraint('device_jobs_one_per_job', ['job_id', 'product_key', 'device_name'])
        .execute();
      // The push queue (oldest queued first) and a device's rows.
      await db.schema.createIndex('device_jobs_queue').on('device_jobs').columns(['state', 'queued_at']).execute();
      await db.schema.createIndex('device_jobs_by_device').on('device_jobs').columns(['product_key', 'device_name']).execute();
      await db.schema
        .createTable('workers')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('client_id', 'text', (c) => c.notNull())
        .addColumn('started_at', big, (c) => c.notNull())
        .addColumn('heartbeat_at', big, (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('reaped_by', 'text')
        .execute();
    },
  },
  {
    version: 2,
    name: 'rollouts (waves, thresholds), device tags, per-device history, operators, audit log, revocations',
    async up(trx, engine) {
      const db = trx as unknown as AnyDb;
      const big = 'bigint';
      const serial = (t: ReturnType<AnyDb['schema']['createTable']>) =>
        t.addColumn('id', engine === 'postgres' ? 'bigserial' : 'integer', (c) => (engine === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()));
      await db.schema.alterTable('devices').addColumn('recorded_counter', big, (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable('devices').addColumn('credential_version', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema
        .createTable('device_tags')
        .addColumn('product_key', 'text', (c) => c.notNull())
        .addColumn('device_name', 'text', (c) => c.notNull())
        .addColumn('tag', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('device_tags_pk', ['product_key', 'device_name', 'tag'])
        .execute();
      await db.schema.createIndex('device_tags_by_tag').on('device_tags').columns(['product_key', 'tag']).execute();
      await db.schema.alterTable('jobs').addColumn('allow_downgrade', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable('jobs').addColumn('security_counter', big, (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable('device_jobs').addColumn('wave', 'integer').execute();
      await db.schema.alterTable('device_jobs').addColumn('released_at', big).execute();
      await db.schema.alterTable('device_jobs').addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      // A rollout's counts per wave and state, every tick.
      await db.schema.createIndex('device_jobs_by_job').on('device_jobs').columns(['job_id', 'wave', 'state']).execute();
      await serial(db.schema.createTable('device_job_events'))
        .addColumn('device_job_id', big, (c) => c.notNull())
        .addColumn('job_id', 'text', (c) => c.notNull())
        .addColumn('product_key', 'text', (c) => c.notNull())
        .addColumn('device_name', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('step', 'integer')
        .addColumn('detail', 'text')
        .addColumn('wave', 'integer')
        .addColumn('at', big, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('device_job_events_by_device').on('device_job_events').columns(['product_key', 'device_name', 'id']).execute();
      await db.schema.createIndex('device_job_events_by_job').on('device_job_events').columns(['job_id', 'state', 'at']).execute();
      // The history is written by triggers, so no code path that moves a row (the push queue, a
      // device's message, a rollout's tick, an import) can forget it, and it commits with the move.
      // Triggers are the one place the two dialects differ.
      const cols = 'device_job_id, job_id, product_key, device_name, state, step, detail, wave, at';
      const vals = 'NEW.id, NEW.job_id, NEW.product_key, NEW.device_name, NEW.state, NEW.step, NEW.detail, NEW.wave, NEW.updated_at';
      if (engine === 'postgres') {
        await sql
          .raw(
            `CREATE FUNCTION device_job_history() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
               IF TG_OP = 'INSERT' OR OLD.state IS DISTINCT FROM NEW.state THEN
                 INSERT INTO device_job_events (${cols}) VALUES (${vals});
               END IF;
               RETURN NULL;
             END $$`,
          )
          .execute(trx);
        await sql.raw('CREATE TRIGGER device_job_history AFTER INSERT OR UPDATE OF state ON device_jobs FOR EACH ROW EXECUTE FUNCTION device_job_history()').execute(trx);
      } else {
        await sql.raw(`CREATE TRIGGER device_job_history_insert AFTER INSERT ON device_jobs BEGIN INSERT INTO device_job_events (${cols}) VALUES (${vals}); END`).execute(trx);
        await sql
          .raw(`CREATE TRIGGER device_job_history_update AFTER UPDATE OF state ON device_jobs WHEN OLD.state IS NOT NEW.state BEGIN INSERT INTO device_job_events (${cols}) VALUES (${vals}); END`)
          .execute(trx);
      }
      await db.schema
        .createTable('rollouts')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('product_key', 'text', (c) => c.notNull().references('products.product_key'))
        .addColumn('version', 'text', (c) => c.notNull())
        .addColumn('job_id', 'text', (c) => c.notNull().unique().references('jobs.id'))
        .addColumn('groups', 'text')
        .addColumn('policy', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('reason', 'text')
        .addColumn('wave', 'integer', (c) => c.notNull())
        .addColumn('wave_started_at', big, (c) => c.notNull())
        .addColumn('accepted_failures', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('resumed_wave', 'integer')
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('created_at', big, (c) => c.notNull())
        .addColumn('updated_at', big, (c) => c.notNull())
        .addColumn('finished_at', big)
        .execute();
      await db.schema.createIndex('rollouts_by_state').on('rollouts').columns(['state', 'created_at']).execute();
      await db.schema
        .createTable('operators')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', big, (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .execute();
      await serial(db.schema.createTable('audit_log'))
        .addColumn('at', big, (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('target', 'text', (c) => c.notNull())
        .addColumn('detail', 'text', (c) => c.notNull())
        .execute();
      await serial(db.schema.createTable('revocations'))
        .addColumn('product_key', 'text', (c) => c.notNull())
        .addColumn('device_name', 'text', (c) => c.notNull())
        .addColumn('reason', 'text', (c) => c.notNull())
        .addColumn('at', big, (c) => c.notNull())
        .execute();
    },
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;

/** Applies the migrations this database lacks (up to `upTo`, default all: tests stop earlier); returns the versions applied. */
export async function migrate(h: DatabaseHandle, upTo = SCHEMA_VERSION): Promise<number[]> {
  return h.write(async (trx) => {
    const db = trx as unknown as AnyDb;
    // Serialises concurrent first opens on PostgreSQL (SQLite's BEGIN IMMEDIATE already does).
    if (h.engine === 'postgres') await sql`select pg_advisory_xact_lock(${0x6f746164})`.execute(trx);
    await db.schema
      .createTable('schema_migrations')
      .ifNotExists()
      .addColumn('version', 'integer', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('applied_at', 'bigint', (c) => c.notNull())
      .execute();
    const done = new Set((await trx.selectFrom('schema_migrations').select('version').execute()).map((r) => Number(r.version)));
    const newest = Math.max(0, ...done);
    if (newest > SCHEMA_VERSION) {
      throw new DatabaseError(`the database has schema version ${newest}, this otadiff knows up to ${SCHEMA_VERSION}: use a newer otadiff`);
    }
    const applied: number[] = [];
    for (const m of MIGRATIONS) {
      if (done.has(m.version) || m.version > upTo) continue;
      await m.up(trx, h.engine);
      await trx.insertInto('schema_migrations').values({ version: m.version, name: m.name, applied_at: Date.now() }).execute();
      applied.push(m.version);
    }
    return applied;
  });
}
