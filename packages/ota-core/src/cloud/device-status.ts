// What a device's messages change in the database: an inform is its version (a row update of
// `devices`) and maybe a step of its current job; a progress report is a row update of its job's
// `device_jobs` row. Each update is conditional on the state it moves from, so the same message
// handled twice (a redelivery after a worker died) or two messages of one device handled at once by
// two workers (shared subscriptions deal messages out one by one) leave the row consistent.

import type { CloudStore } from './cloud-store.js';
import { FINAL_STATES, IN_FLIGHT_STATES, type Database, type DeviceJobState } from './db/schema.js';
import type { ExpressionBuilder } from 'kysely';
import type { DeviceRef } from '../protocol/topics.js';
import { compareVersions } from '../protocol/version.js';
import { decideTarget, type JobTarget } from './job-target.js';

export type InformOutcome =
  | { kind: 'unknown-device' }
  /** No current job, or one the device has finished. */
  | { kind: 'recorded' }
  | { kind: 'succeeded'; jobId: string }
  | { kind: 'skipped'; jobId: string }
  /** Queued for a notice: a new job's first sight of it, or a reboot in the middle of one (pushed again). */
  | { kind: 'queued'; jobId: string; again: boolean };

export type ProgressOutcome = { kind: 'ignored' } | { kind: 'progress'; jobId: string; state: DeviceJobState };

/** isTold() of a device_jobs row, in SQL: the rows a device's progress report may move. */
function told(eb: ExpressionBuilder<Database, 'device_jobs'>) {
  return eb.or([eb('state', 'in', IN_FLIGHT_STATES), eb.and([eb('state', '=', 'queued'), eb('pushes', '>', 0)])]);
}

/**
 * The transition an inform of `version` makes from `state` of a job for `target`, if any, for a
 * device that recorded `recordedCounter` (job-target.ts decides what the job does for it).
 */
export function informTransition(state: DeviceJobState, pushes: number, version: string, target: JobTarget | string, recordedCounter = 0): DeviceJobState | undefined {
  const t = typeof target === 'string' ? { version: target, allowDowngrade: false, securityCounter: 0 } : target;
  // Held back by its rollout, or about to be told to stop: the rollout decides.
  if (state === 'held' || state === 'cancelling') return undefined;
  const cmp = compareVersions(version, t.version);
  if (FINAL_STATES.includes(state)) {
    // A device that finished its restore after it was cancelled mid-restore, or after its timeout.
    return cmp === 0 && pushes > 0 && (state === 'cancelled' || state === 'failed') ? 'succeeded' : undefined;
  }
  if (cmp === 0) return state === 'waiting' || (state === 'queued' && pushes === 0) ? 'skipped' : 'succeeded';
  const d = decideTarget(version, recordedCounter, t);
  if (d.kind === 'skip') return 'skipped';
  // The job has work to do. A device that informs mid-job has rebooted: tell it again (its
  // download resumes from its checkpoint).
  if (state === 'waiting' || IN_FLIGHT_STATES.includes(state)) return 'queued';
  return undefined;
}

export async function recordInform(store: CloudStore, d: DeviceRef, version: string, now = Date.now()): Promise<InformOutcome> {
  const db = store.db;
  // What the device recorded at least: the counter of the release it runs (firmware is immutable).
  const counter = await store.releaseCounter(d.productKey, version);
  // The version first, then the job: a job created meanwhile either saw this version (its row is
  // queued) or is visible to the read below (its row waiting, moved on here). On PostgreSQL the
  // job's transaction holds the device rows, so this update waits for it.
  const updated = await db
    .updateTable('devices')
    .set((eb) => ({
      version,
      last_seen: now,
      ...(counter === undefined ? {} : { recorded_counter: eb.case().when('recorded_counter', '<', counter).then(counter).else(eb.ref('recorded_counter')).end() }),
    }))
    .where('product_key', '=', d.productKey)
    .where('device_name', '=', d.deviceName)
    .returning('current_job')
    .executeTakeFirst();
  if (updated === undefined) return { kind: 'unknown-device' };
  for (let attempt = 0; ; attempt++) {
    const row = await db
      .selectFrom('devices as d')
      .innerJoin('jobs as jb', 'jb.id', 'd.current_job')
      .innerJoin('device_jobs as j', (join) => join.onRef('j.job_id', '=', 'd.current_job').onRef('j.product_key', '=', 'd.product_key').onRef('j.device_name', '=', 'd.device_name'))
      .select(['d.current_job', 'd.recorded_counter', 'jb.version as target', 'jb.allow_downgrade', 'jb.security_counter', 'j.id as row', 'j.state', 'j.pushes'])
      .where('d.product_key', '=', d.productKey)
      .where('d.device_name', '=', d.deviceName)
      .executeTakeFirst();
    if (row === undefined || row.current_job === null) return { kind: 'recorded' };
    const target: JobTarget = { version: row.target, allowDowngrade: Number(row.allow_downgrade) === 1, securityCounter: Number(row.security_counter) };
    const recorded = Number(row.recorded_counter);
    const next = informTransition(row.state, Number(row.pushes), version, target, recorded);
    if (next === undefined) {
      // Still queued: the notice will be made from the version it runs now.
      if (row.state === 'queued') await db.updateTable('device_jobs').set({ from_version: version, updated_at: now }).where('id', '=', row.row).where('state', '=', 'queued').execute();
      return { kind: 'recorded' };
    }
    const skip = decideTarget(version, recorded, target);
    const set =
      next === 'queued'
        ? { state: next, from_version: version, queued_at: now, step: null, detail: null, updated_at: now }
        : { state: next, updated_at: now, finished_at: now, ...(next === 'skipped' ? { detail: skip.kind === 'skip' ? skip.detail : `runs ${version}` } : {}) };
    const r = await db.updateTable('device_jobs').set(set).where('id', '=', row.row).where('state', '=', row.state).executeTakeFirst();
    if (Number(r.numUpdatedRows) === 1) {
      if (next === 'queued') return { kind: 'queued', jobId: row.current_job, again: row.state !== 'waiting' };
      return next === 'succeeded' ? { kind: 'succeeded', jobId: row.current_job } : { kind: 'skipped', jobId: row.current_job };
    }
    // Another message of this device moved the row meanwhile: decide again from its new state.
    if (attempt >= 3) return { kind: 'recorded' };
  }
}

/**
 * A progress report: a step below 0 fails the job, 100 is downloaded, anything else downloading.
 * Steps only go forward (a late 40% after 100% changes nothing); a failure always lands.
 */
export async function recordProgress(store: CloudStore, d: DeviceRef, step: number, desc: string, now = Date.now()): Promise<ProgressOutcome> {
  const state: DeviceJobState = step < 0 ? 'failed' : step >= 100 ? 'downloaded' : 'downloading';
  const current = store.db.selectFrom('devices').select('current_job').where('product_key', '=', d.productKey).where('device_name', '=', d.deviceName);
  let q = store.db
    .updateTable('device_jobs')
    .set({ state, step, detail: desc.slice(0, 1000), updated_at: now, ...(state === 'failed' ? { finished_at: now } : {}) })
    .where('product_key', '=', d.productKey)
    .where('device_name', '=', d.deviceName)
    .where('job_id', '=', current)
    // Finished, being cancelled, or never told (a late report of an earlier job of the same device): unmoved.
    .where(told);
  if (step >= 0) q = q.where((eb) => eb.or([eb('step', 'is', null), eb('step', '<=', step)]));
  const rows = await q.returning(['job_id']).execute();
  return rows.length === 0 ? { kind: 'ignored' } : { kind: 'progress', jobId: rows[0].job_id, state };
}

