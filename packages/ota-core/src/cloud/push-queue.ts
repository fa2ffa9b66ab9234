// The push queue: device_jobs rows in state 'queued', oldest first. A worker claims a batch in one
// UPDATE (PostgreSQL: the candidates locked with FOR UPDATE SKIP LOCKED, so two workers never take
// the same row; SQLite: one writer at a time), marking them 'notified' before it publishes: a
// worker that dies between the claim and the publish loses at most those notices, which the
// notice timeout sends again, rather than two workers both sending one.

import { sql } from 'kysely';
import type { CloudStore } from './cloud-store.js';

export interface Claim {
  id: number;
  jobId: string;
  productKey: string;
  deviceName: string;
  fromVersion: string | null;
}

export async function claimPushes(store: CloudStore, worker: string, n: number, now = Date.now()): Promise<Claim[]> {
  if (n <= 0) return [];
  const set = { state: 'notified' as const, worker, notified_at: now, updated_at: now, step: null, detail: null, pushes: sql<number>`pushes + 1` };
  const returned = ['device_jobs.id', 'device_jobs.job_id', 'device_jobs.product_key', 'device_jobs.device_name', 'device_jobs.from_version'] as const;
  let rows;
  if (store.engine === 'postgres') {
    // The candidates in a materialized CTE, locked once: as `id IN (subquery … FOR UPDATE SKIP
    // LOCKED)` PostgreSQL may run the subquery again for each row it updates, and each run skips the
    // rows the statement already moved, so one claim could take far more than n.
    rows = await store.db
      .with(
        (w) => w('c').materialized(),
        (db) => db.selectFrom('device_jobs').select('id').where('state', '=', 'queued').orderBy('queued_at').orderBy('id').limit(n).forUpdate().skipLocked(),
      )
      .updateTable('device_jobs')
      .from('c')
      .set(set)
      .whereRef('device_jobs.id', '=', 'c.id')
      .where('device_jobs.state', '=', 'queued')
      .returning([...returned])
      .execute();
  } else {
    const candidates = store.db.selectFrom('device_jobs').select('id').where('state', '=', 'queued').orderBy('queued_at').orderBy('id').limit(n);
    rows = await store.db.updateTable('device_jobs').set(set).where('id', 'in', candidates).where('state', '=', 'queued').returning([...returned]).execute();
  }
  return rows.map((r) => ({ id: Number(r.id), jobId: r.job_id, productKey: r.product_key, deviceName: r.device_name, fromVersion: r.from_version }));
}

/** What was sent (the status shows it). */
export async function recordPush(store: CloudStore, c: Claim, o: { isDiff: boolean; packageBytes: number }): Promise<void> {
  await store.db.updateTable('device_jobs').set({ is_diff: o.isDiff ? 1 : 0, package_bytes: o.packageBytes }).where('id', '=', c.id).execute();
}

/** The notice never left (no broker): back to the queue. */
export async function unclaim(store: CloudStore, c: Claim, now = Date.now()): Promise<void> {
  await store.db
    .updateTable('device_jobs')
    .set({ state: 'queued', queued_at: now, updated_at: now, pushes: sql<number>`pushes - 1` })
    .where('id', '=', c.id)
    .where('state', '=', 'notified')
    .execute();
}

/** A job that cannot be pushed (its package cannot be made): the device's job fails, saying why. */
export async function failPush(store: CloudStore, c: Claim, why: string, now = Date.now()): Promise<void> {
  await store.db
    .updateTable('device_jobs')
    .set({ state: 'failed', detail: why.slice(0, 1000), updated_at: now, finished_at: now })
    .where('id', '=', c.id)
    .where('state', '=', 'notified')
    .execute();
}

/**
 * Notices without any answer for `timeoutMs` go back to the queue (a device that missed one, or a
 * worker that died before publishing); after `maxPushes` notices the device's job fails.
 */
export async function expireNotices(store: CloudStore, timeoutMs: number, maxPushes: number, now = Date.now()): Promise<{ requeued: number; failed: number }> {
  const stale = now - timeoutMs;
  const failed = await store.db
    .updateTable('device_jobs')
    .set({ state: 'failed', detail: `no answer to ${maxPushes} notice(s)`, updated_at: now, finished_at: now })
    .where('state', '=', 'notified')
    .where('step', 'is', null)
    .where('notified_at', '<', stale)
    .where('pushes', '>=', maxPushes)
    .executeTakeFirst();
  const requeued = await store.db
    .updateTable('device_jobs')
    .set({ state: 'queued', queued_at: now, updated_at: now })
    .where('state', '=', 'notified')
    .where('step', 'is', null)
    .where('notified_at', '<', stale)
    .executeTakeFirst();
  return { requeued: Number(requeued.numUpdatedRows), failed: Number(failed.numUpdatedRows) };
}
