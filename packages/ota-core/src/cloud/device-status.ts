// What a device's messages change in the database: an inform is its version (a row update of
// `devices`) and maybe a step of its current job; a progress report is a row update of its job's
// `device_jobs` row. Each update is conditional on the state it moves from, so the same message
// handled twice (a redelivery after a worker died) or two messages of one device handled at once by
// two workers (shared subscriptions deal messages out one by one) leave the row consistent.

import type { CloudStore } from './cloud-store.js';
import { FINAL_STATES, IN_FLIGHT_STATES, type DeviceJobState } from './db/schema.js';
import type { DeviceRef } from '../protocol/topics.js';
import { compareVersions } from '../protocol/version.js';

export type InformOutcome =
  | { kind: 'unknown-device' }
  /** No current job, or one the device has finished. */
  | { kind: 'recorded' }
  | { kind: 'succeeded'; jobId: string }
  | { kind: 'skipped'; jobId: string }
  /** Queued for a notice: a new job's first sight of it, or a reboot in the middle of one (pushed again). */
  | { kind: 'queued'; jobId: string; again: boolean };

export type ProgressOutcome = { kind: 'ignored' } | { kind: 'progress'; jobId: string; state: DeviceJobState };

const UNFINISHED_OR_WAITING: DeviceJobState[] = [...FINAL_STATES, 'waiting'];

/** The transition an inform of `version` makes from `state` of a job for `target`, if any. */
export function informTransition(state: DeviceJobState, pushes: number, version: string, target: string): DeviceJobState | undefined {
  if (FINAL_STATES.includes(state)) return undefined;
  const cmp = compareVersions(version, target);
  if (cmp === 0) return state === 'waiting' || (state === 'queued' && pushes === 0) ? 'skipped' : 'succeeded';
  if (cmp > 0) return 'skipped';
  // Older: the job has work to do. A device that informs mid-job has rebooted: tell it again (its
  // download resumes from its checkpoint).
  if (state === 'waiting' || IN_FLIGHT_STATES.includes(state)) return 'queued';
  return undefined;
}

export async function recordInform(store: CloudStore, d: DeviceRef, version: string, now = Date.now()): Promise<InformOutcome> {
  const db = store.db;
  // The version first, then the job: a job created meanwhile either saw this version (its row is
  // queued) or is visible to the read below (its row waiting, moved on here). On PostgreSQL the
  // job's transaction holds the device rows, so this update waits for it.
  const updated = await db
    .updateTable('devices')
    .set({ version, last_seen: now })
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
      .select(['d.current_job', 'jb.version as target', 'j.id as row', 'j.state', 'j.pushes'])
      .where('d.product_key', '=', d.productKey)
      .where('d.device_name', '=', d.deviceName)
      .executeTakeFirst();
    if (row === undefined || row.current_job === null) return { kind: 'recorded' };
    const next = informTransition(row.state, Number(row.pushes), version, row.target);
    if (next === undefined) {
      // Still queued: the notice will be made from the version it runs now.
      if (row.state === 'queued') await db.updateTable('device_jobs').set({ from_version: version, updated_at: now }).where('id', '=', row.row).where('state', '=', 'queued').execute();
      return { kind: 'recorded' };
    }
    const set =
      next === 'queued'
        ? { state: next, from_version: version, queued_at: now, step: null, detail: null, updated_at: now }
        : { state: next, updated_at: now, finished_at: now, ...(next === 'skipped' ? { detail: `runs ${version}` } : {}) };
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
    .where('state', 'not in', UNFINISHED_OR_WAITING);
  if (step >= 0) q = q.where((eb) => eb.or([eb('step', 'is', null), eb('step', '<=', step)]));
  const rows = await q.returning(['job_id']).execute();
  return rows.length === 0 ? { kind: 'ignored' } : { kind: 'progress', jobId: rows[0].job_id, state };
}

