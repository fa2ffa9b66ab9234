// A rollout's controller: one tick, in one write transaction with the rollout's row locked, run by
// every worker about once a second (and at once after a create or a resume). It is idempotent, so
// several workers ticking one rollout agree. A tick:
//
//   1. fails the released devices that neither succeeded nor failed within the timeout;
//   2. queues again the failed devices that have retries left;
//   3. releases held devices (in random order) into the current wave up to its cumulative target;
//   4. judges the wave: failures beyond the limit pause the rollout, saying why; enough successes
//      start the next wave (released in the same tick); the last wave with every device finished
//      completes it. A wave that finished below its success threshold pauses too, unless an
//      operator resumed it.
//
// Also here: the cancel notices a worker sends for a cancelled rollout's downloading devices.

import { sql, type Transaction } from 'kysely';
import { writeAudit } from './audit.js';
import { initialJobState, type CloudStore } from './cloud-store.js';
import type { Database, DeviceJobState, RolloutRow } from './db/schema.js';
import type { JobTarget } from './job-target.js';
import { amountText, failureLimit, policyFromJson, successesNeeded, waveTargets } from './rollout-policy.js';

const UNFINISHED: DeviceJobState[] = ['waiting', 'queued', 'notified', 'downloading', 'downloaded'];
const DONE_OK: readonly DeviceJobState[] = ['succeeded', 'skipped', 'superseded'];
const FINISHED: readonly DeviceJobState[] = [...DONE_OK, 'failed', 'cancelled'];
/** Rows per UPDATE … WHERE id IN (…). */
const BATCH = 400;

export interface TickOutcome {
  /** What changed, for the log (empty: nothing). */
  events: string[];
  /** Devices queued for a notice by this tick (the worker drains the queue). */
  queued: number;
}

/** Locks the rollout's row until commit (PostgreSQL; SQLite's write transaction holds everything). */
export async function lockRollout(store: CloudStore, trx: Transaction<Database>, id: string): Promise<RolloutRow | undefined> {
  let q = trx.selectFrom('rollouts').selectAll().where('id', '=', id);
  if (store.engine === 'postgres') q = q.forUpdate();
  return q.executeTakeFirst();
}

/** The released devices not yet told go back to held (their wave kept): nothing new is sent. */
export async function holdBack(trx: Transaction<Database>, jobId: string, now: number): Promise<void> {
  await trx
    .updateTable('device_jobs')
    .set({ state: 'held', updated_at: now, detail: 'rollout paused' })
    .where('job_id', '=', jobId)
    .where('wave', 'is not', null)
    .where('state', 'in', ['queued', 'waiting'])
    .execute();
}

/** The controller's name in the audit log. */
const CONTROLLER = { name: 'rollout-controller', role: 'admin' } as const;

/**
 * Moves held rows of a job into a wave: `wave.released` false picks `n` rows never released (in
 * random order) into `wave.wave`; true re-releases the rows held back by a pause. Each gets the
 * state its device's version calls for (queued, waiting, skipped). Returns the number queued.
 */
export async function releaseHeld(store: CloudStore, trx: Transaction<Database>, jobId: string, wave: { wave: number; released: boolean }, n: number, now: number): Promise<number> {
  if (n <= 0) return 0;
  const job = await trx.selectFrom('jobs').select(['version', 'allow_downgrade', 'security_counter']).where('id', '=', jobId).executeTakeFirstOrThrow();
  const target: JobTarget = { version: job.version, allowDowngrade: Number(job.allow_downgrade) === 1, securityCounter: Number(job.security_counter) };
  let q = trx
    .selectFrom('device_jobs as j')
    .innerJoin('devices as d', (join) => join.onRef('d.product_key', '=', 'j.product_key').onRef('d.device_name', '=', 'j.device_name'))
    .select(['j.id', 'd.version', 'd.recorded_counter'])
    .where('j.job_id', '=', jobId)
    .where('j.state', '=', 'held');
  q = wave.released ? q.where('j.wave', '=', wave.wave) : q.where('j.wave', 'is', null).orderBy(sql`random()`).limit(n);
  const rows = await q.execute();
  let queued = 0;
  const groups = new Map<string, { state: DeviceJobState; detail: string | null; ids: number[] }>();
  for (const r of rows) {
    const s = initialJobState(r.version, target, Number(r.recorded_counter));
    const k = `${s.state}\n${s.detail ?? ''}`;
    let g = groups.get(k);
    if (g === undefined) groups.set(k, (g = { ...s, ids: [] }));
    g.ids.push(Number(r.id));
    if (s.state === 'queued') queued++;
  }
  for (const g of groups.values()) {
    for (let i = 0; i < g.ids.length; i += BATCH) {
      const ids = g.ids.slice(i, i + BATCH);
      await trx
        .updateTable('device_jobs')
        .set((eb) => ({
          state: g.state,
          detail: g.detail,
          wave: wave.wave,
          released_at: now,
          updated_at: now,
          step: null,
          queued_at: g.state === 'queued' ? now : null,
          finished_at: g.state === 'skipped' ? now : null,
          // The notice is made from the version the device runs.
          from_version: g.state === 'queued' ? eb.selectFrom('devices as d').select('d.version').whereRef('d.product_key', '=', 'device_jobs.product_key').whereRef('d.device_name', '=', 'device_jobs.device_name') : null,
        }))
        .where('id', 'in', ids)
        .execute();
    }
  }
  return queued;
}

async function counts(trx: Transaction<Database>, jobId: string): Promise<Array<{ wave: number | null; state: DeviceJobState; n: number }>> {
  const rows = await trx
    .selectFrom('device_jobs')
    .select(['wave', 'state', (eb) => eb.fn.countAll<number>().as('n')])
    .where('job_id', '=', jobId)
    .groupBy(['wave', 'state'])
    .execute();
  return rows.map((r) => ({ wave: r.wave === null ? null : Number(r.wave), state: r.state, n: Number(r.n) }));
}

/** One tick of rollout `id` inside the caller's write transaction. */
export async function rolloutTickIn(store: CloudStore, trx: Transaction<Database>, id: string, now = Date.now()): Promise<TickOutcome> {
  const out: TickOutcome = { events: [], queued: 0 };
  const r = await lockRollout(store, trx, id);
  if (r === undefined || r.state !== 'running') return out;
  const policy = policyFromJson(r.policy);
  const job = r.job_id;

  if (policy.timeoutMs !== null) {
    const t = await trx
      .updateTable('device_jobs')
      .set({ state: 'failed', detail: `timed out: neither succeeded nor failed within ${Math.round(policy.timeoutMs / 1000)} s`, updated_at: now, finished_at: now })
      .where('job_id', '=', job)
      .where('wave', 'is not', null)
      .where('state', 'in', UNFINISHED)
      .where('released_at', '<', now - policy.timeoutMs)
      .executeTakeFirst();
    if (Number(t.numUpdatedRows) > 0) out.events.push(`${t.numUpdatedRows} device(s) timed out`);
  }
  if (policy.retries > 0) {
    const again = await trx
      .updateTable('device_jobs')
      .set((eb) => ({
        state: 'queued',
        attempts: eb('attempts', '+', 1),
        step: null,
        detail: null,
        queued_at: now,
        released_at: now,
        updated_at: now,
        finished_at: null,
        from_version: eb.selectFrom('devices as d').select('d.version').whereRef('d.product_key', '=', 'device_jobs.product_key').whereRef('d.device_name', '=', 'device_jobs.device_name'),
      }))
      .where('job_id', '=', job)
      .where('wave', 'is not', null)
      .where('state', '=', 'failed')
      .where('attempts', '<', policy.retries)
      .executeTakeFirst();
    const n = Number(again.numUpdatedRows);
    if (n > 0) {
      out.queued += n;
      out.events.push(`${n} failed device(s) tried again`);
    }
  }

  let wave = r.wave;
  let accepted = Number(r.accepted_failures);
  let resumed = r.resumed_wave === null ? null : Number(r.resumed_wave);
  for (let guard = 0; guard <= policy.waves.length; guard++) {
    let rows = await counts(trx, job);
    const total = rows.reduce((s, x) => s + x.n, 0);
    const targets = waveTargets(policy.waves, total);
    const released = rows.filter((x) => x.wave !== null).reduce((s, x) => s + x.n, 0);
    const need = targets[wave] - released;
    if (need > 0) {
      out.queued += await releaseHeld(store, trx, job, { wave, released: false }, need, now);
      rows = await counts(trx, job);
    }
    const size = targets[wave] - (wave > 0 ? targets[wave - 1] : 0);
    const inWave = rows.filter((x) => x.wave === wave);
    const of = (states: readonly DeviceJobState[]): number => inWave.filter((x) => states.includes(x.state)).reduce((s, x) => s + x.n, 0);
    const failed = of(['failed']);
    const ok = of(DONE_OK);
    const finished = of(FINISHED);
    const present = inWave.reduce((s, x) => s + x.n, 0);
    const limit = failureLimit(policy.maxFailures, size);
    const last = wave === policy.waves.length - 1;
    const pause = async (reason: string): Promise<void> => {
      await trx.updateTable('rollouts').set({ state: 'paused', reason, wave, accepted_failures: accepted, resumed_wave: resumed, updated_at: now }).where('id', '=', id).execute();
      await holdBack(trx, job, now);
      await writeAudit(trx, { actor: CONTROLLER, action: 'rollout.pause', target: id, detail: { reason } }, now);
      out.events.push(`paused: ${reason}`);
    };
    if (failed - accepted > limit) {
      await pause(`wave ${wave + 1}: ${failed} of ${size} device(s) failed, above the limit of ${limit} (max failures ${amountText(policy.maxFailures)})`);
      return out;
    }
    const allDone = present >= size && finished === present;
    const reached = ok >= successesNeeded(policy.successThreshold, size);
    if (!reached && allDone && resumed !== wave && size > 0) {
      await pause(`wave ${wave + 1} finished with ${ok} of ${size} device(s) succeeded, below the success threshold of ${policy.successThreshold}%`);
      return out;
    }
    const goOn = size === 0 || reached || (allDone && resumed === wave);
    if (!goOn) break;
    if (last) {
      if (!allDone) break;
      // The whole rollout's numbers, not the last wave's: every wave is done.
      const ofAll = (states: readonly DeviceJobState[]): number => rows.filter((x) => states.includes(x.state)).reduce((s, x) => s + x.n, 0);
      await trx.updateTable('rollouts').set({ state: 'completed', reason: `${ofAll(DONE_OK)} of ${total} device(s) updated or already on ${r.version}`, wave, updated_at: now, finished_at: now }).where('id', '=', id).execute();
      await writeAudit(trx, { actor: CONTROLLER, action: 'rollout.complete', target: id, detail: { succeeded: ofAll(['succeeded']), failed: ofAll(['failed']) } }, now);
      out.events.push('completed');
      return out;
    }
    wave++;
    accepted = 0;
    resumed = null;
    await trx.updateTable('rollouts').set({ wave, wave_started_at: now, accepted_failures: 0, resumed_wave: null, updated_at: now }).where('id', '=', id).execute();
    out.events.push(`wave ${wave + 1} of ${policy.waves.length} started`);
  }
  return out;
}

/** One tick of each running rollout, each in its own transaction. */
export async function tickRollouts(store: CloudStore, ids: readonly string[], now = Date.now()): Promise<Array<TickOutcome & { id: string }>> {
  const out: Array<TickOutcome & { id: string }> = [];
  for (const id of ids) out.push({ id, ...(await store.handle.write((trx) => rolloutTickIn(store, trx, id, now))) });
  return out;
}

export interface CancelClaim {
  id: number;
  jobId: string;
  productKey: string;
  deviceName: string;
}

/** Claims up to `n` devices to send a cancel notice to (their rows become cancelled), as the push queue claims notices. */
export async function claimCancels(store: CloudStore, n: number, now = Date.now()): Promise<CancelClaim[]> {
  const set = { state: 'cancelled' as const, detail: 'rollout cancelled: told to stop its download', updated_at: now, finished_at: now };
  const returned = ['device_jobs.id', 'device_jobs.job_id', 'device_jobs.product_key', 'device_jobs.device_name'] as const;
  // As claimPushes (push-queue.ts): on PostgreSQL a materialized CTE, so a claim takes at most n.
  const rows =
    store.engine === 'postgres'
      ? await store.db
          .with(
            (w) => w('c').materialized(),
            (db) => db.selectFrom('device_jobs').select('id').where('state', '=', 'cancelling').orderBy('id').limit(n).forUpdate().skipLocked(),
          )
          .updateTable('device_jobs')
          .from('c')
          .set(set)
          .whereRef('device_jobs.id', '=', 'c.id')
          .where('device_jobs.state', '=', 'cancelling')
          .returning([...returned])
          .execute()
      : await store.db
          .updateTable('device_jobs')
          .set(set)
          .where('id', 'in', store.db.selectFrom('device_jobs').select('id').where('state', '=', 'cancelling').orderBy('id').limit(n))
          .where('state', '=', 'cancelling')
          .returning([...returned])
          .execute();
  return rows.map((r) => ({ id: Number(r.id), jobId: r.job_id, productKey: r.product_key, deviceName: r.device_name }));
}
