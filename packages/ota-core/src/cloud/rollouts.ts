// Staged rollouts over the job queue: a rollout is a job whose device rows start `held`; its waves
// release them (rollout-tick.ts), and the push queue sends the released ones as it does a job's.
// Here: creating one (its first wave released in the same transaction), reading it with its waves,
// and the operator's pause, resume and cancel, each one transaction with its audit row.
//
// Pause holds back the released devices not yet told (queued, waiting) and sends nothing new; the
// devices already told go on. Cancel ends the rollout at once: nothing more is sent; the devices
// downloading get a cancel notice (rows `cancelling` until a worker sends it); a device mid-restore
// (it reported its download complete) finishes, and its row follows what it reports.

import { randomBytes } from 'node:crypto';
import type { Transaction } from 'kysely';
import { writeAudit, type Actor } from './audit.js';
import { CloudStoreError, type CloudStore } from './cloud-store.js';
import type { Database, DeviceJobState, RolloutRow, RolloutState } from './db/schema.js';
import { checkTags, devicesTagged } from './device-tags.js';
import { amountText, durationText, parsePolicy, policyFromJson, waveTargets, type PolicyInput, type RolloutPolicy } from './rollout-policy.js';
import { holdBack, lockRollout, releaseHeld, rolloutTickIn } from './rollout-tick.js';

export interface NewRollout extends PolicyInput {
  productKey: string;
  version: string;
  /** Tags: devices carrying any of them; default all devices of the product (also those added later). */
  groups?: string[];
  downloadProtocol?: 'http' | 'coap';
}

export interface WaveView {
  index: number;
  /** Devices released by the end of this wave, in all. */
  target: number;
  /** Devices released in this wave. */
  devices: number;
  succeeded: number;
  failed: number;
  skipped: number;
  cancelled: number;
  inProgress: number;
  state: 'pending' | 'running' | 'done';
}

export interface RolloutView {
  id: string;
  productKey: string;
  version: string;
  jobId: string;
  groups: string[] | null;
  policy: RolloutPolicy;
  /** The policy as an operator writes it. */
  policyText: { waves: string; successThreshold: string; maxFailures: string; timeout: string; retries: number };
  state: RolloutState;
  reason: string | null;
  /** The wave in progress (0-based). */
  wave: number;
  /** The target allows a downgrade: devices on newer versions are brought back to it. */
  rollback: boolean;
  createdBy: string;
  createdAt: number;
  updatedAt: number;
  finishedAt: number | null;
  /** Targeted devices, and how many are in each state. */
  devices: number;
  counts: Partial<Record<DeviceJobState, number>>;
  waves: WaveView[];
}

const IN_PROGRESS: readonly DeviceJobState[] = ['waiting', 'queued', 'notified', 'downloading', 'downloaded', 'cancelling'];

export async function createRollout(store: CloudStore, o: NewRollout, actor: Actor): Promise<RolloutView> {
  const policy = parsePolicy(o);
  const groups = o.groups === undefined || o.groups.length === 0 ? undefined : checkTags(o.groups, 'group tag');
  const target = await store.checkJob({ productKey: o.productKey, version: o.version, downloadProtocol: o.downloadProtocol });
  const id = await store.handle.write(async (trx) => {
    const now = Date.now();
    let devices: string[] | undefined;
    if (groups !== undefined) {
      devices = await devicesTagged(trx, o.productKey, groups);
      if (devices.length === 0) throw new CloudStoreError(`no device of ${o.productKey} carries ${groups.length === 1 ? 'the tag' : 'any of the tags'} ${groups.join(', ')}`, 'not-found');
    }
    const { job } = await store.createJobIn(trx, { productKey: o.productKey, version: o.version, devices, listed: devices !== undefined, downloadProtocol: o.downloadProtocol }, target, { hold: true });
    const rid = `r${now.toString(36)}${randomBytes(3).toString('hex')}`;
    await trx
      .insertInto('rollouts')
      .values({
        id: rid,
        product_key: o.productKey,
        version: target.version,
        job_id: job.id,
        groups: groups === undefined ? null : JSON.stringify(groups),
        policy: JSON.stringify(policy),
        state: 'running',
        reason: null,
        wave: 0,
        wave_started_at: now,
        resumed_wave: null,
        created_by: actor.name,
        created_at: now,
        updated_at: now,
        finished_at: null,
      })
      .execute();
    await writeAudit(trx, { actor, action: 'rollout.create', target: rid, detail: { productKey: o.productKey, version: target.version, groups: groups ?? 'all', waves: policy.waves.map(amountText).join(','), successThreshold: policy.successThreshold, maxFailures: amountText(policy.maxFailures), timeout: durationText(policy.timeoutMs), retries: policy.retries } }, now);
    // The first wave goes out with the rollout (a worker pushes it at once).
    await rolloutTickIn(store, trx, rid, now);
    return rid;
  });
  return (await getRollout(store, id))!;
}

function policyText(p: RolloutPolicy): RolloutView['policyText'] {
  return { waves: p.waves.map(amountText).join(','), successThreshold: `${p.successThreshold}%`, maxFailures: amountText(p.maxFailures), timeout: durationText(p.timeoutMs), retries: p.retries };
}

export async function getRollout(store: CloudStore, id: string): Promise<RolloutView | undefined> {
  const r = await store.db.selectFrom('rollouts').selectAll().where('id', '=', id).executeTakeFirst();
  if (r === undefined) return undefined;
  return viewOf(store, r);
}

async function viewOf(store: CloudStore, r: RolloutRow): Promise<RolloutView> {
  const policy = policyFromJson(r.policy);
  const job = await store.db.selectFrom('jobs').select(['allow_downgrade']).where('id', '=', r.job_id).executeTakeFirst();
  const rows = await store.db
    .selectFrom('device_jobs')
    .select(['wave', 'state', (eb) => eb.fn.countAll<number>().as('n')])
    .where('job_id', '=', r.job_id)
    .groupBy(['wave', 'state'])
    .execute();
  const counts: Partial<Record<DeviceJobState, number>> = {};
  let total = 0;
  for (const x of rows) {
    counts[x.state] = (counts[x.state] ?? 0) + Number(x.n);
    total += Number(x.n);
  }
  const targets = waveTargets(policy.waves, total);
  const waves: WaveView[] = targets.map((target, index) => {
    const of = (states: readonly DeviceJobState[]): number => rows.filter((x) => x.wave === index && states.includes(x.state)).reduce((s, x) => s + Number(x.n), 0);
    const devices = rows.filter((x) => x.wave === index).reduce((s, x) => s + Number(x.n), 0);
    const state = index < r.wave || r.state === 'completed' ? 'done' : index === r.wave && r.state !== 'cancelled' ? 'running' : devices > 0 ? 'done' : 'pending';
    return {
      index,
      target,
      devices,
      succeeded: of(['succeeded']),
      failed: of(['failed']),
      skipped: of(['skipped', 'superseded']),
      cancelled: of(['cancelled']),
      inProgress: of(IN_PROGRESS),
      state,
    };
  });
  return {
    id: r.id,
    productKey: r.product_key,
    version: r.version,
    jobId: r.job_id,
    groups: r.groups === null ? null : (JSON.parse(r.groups) as string[]),
    policy,
    policyText: policyText(policy),
    state: r.state,
    reason: r.reason,
    wave: r.wave,
    rollback: Number(job?.allow_downgrade ?? 0) === 1,
    createdBy: r.created_by,
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
    finishedAt: r.finished_at === null ? null : Number(r.finished_at),
    devices: total,
    counts,
    waves,
  };
}

/** Newest first; `before`: the id of the last one of the previous page. */
export async function listRollouts(store: CloudStore, o: { productKey?: string; state?: RolloutState; limit?: number; before?: string } = {}): Promise<{ rollouts: RolloutView[]; next?: string }> {
  const limit = o.limit ?? 50;
  let q = store.db.selectFrom('rollouts').selectAll().orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit + 1);
  if (o.productKey !== undefined) q = q.where('product_key', '=', o.productKey);
  if (o.state !== undefined) q = q.where('state', '=', o.state);
  if (o.before !== undefined) {
    const b = await store.db.selectFrom('rollouts').select(['created_at', 'id']).where('id', '=', o.before).executeTakeFirst();
    if (b === undefined) throw new CloudStoreError(`unknown rollout ${o.before}`, 'not-found');
    q = q.where((eb) => eb.or([eb('created_at', '<', b.created_at), eb.and([eb('created_at', '=', b.created_at), eb('id', '<', b.id)])]));
  }
  const rows = await q.execute();
  const rollouts = await Promise.all(rows.slice(0, limit).map((r) => viewOf(store, r)));
  return rows.length > limit ? { rollouts, next: rollouts[rollouts.length - 1].id } : { rollouts };
}

async function changeRollout(
  store: CloudStore,
  id: string,
  actor: Actor,
  action: string,
  fn: (trx: Transaction<Database>, r: RolloutRow, now: number) => Promise<Record<string, unknown> | void>,
): Promise<RolloutView> {
  await store.handle.write(async (trx) => {
    const r = await lockRollout(store, trx, id);
    if (r === undefined) throw new CloudStoreError(`unknown rollout ${id}`, 'not-found');
    const now = Date.now();
    const detail = await fn(trx, r, now);
    await writeAudit(trx, { actor, action, target: id, detail: detail ?? {} }, now);
  });
  return (await getRollout(store, id))!;
}

export function pauseRollout(store: CloudStore, id: string, actor: Actor, why?: string): Promise<RolloutView> {
  return changeRollout(store, id, actor, 'rollout.pause', async (trx, r, now) => {
    if (r.state !== 'running') throw new CloudStoreError(`rollout ${id} is ${r.state}, not running`, 'conflict');
    const reason = `paused by ${actor.name}${why ? `: ${why}` : ''}`;
    await trx.updateTable('rollouts').set({ state: 'paused', reason, updated_at: now }).where('id', '=', id).execute();
    await holdBack(trx, r.job_id, now);
    return { reason };
  });
}

export function resumeRollout(store: CloudStore, id: string, actor: Actor): Promise<RolloutView> {
  return changeRollout(store, id, actor, 'rollout.resume', async (trx, r, now) => {
    if (r.state !== 'paused') throw new CloudStoreError(`rollout ${id} is ${r.state}, not paused`, 'conflict');
    // The failures so far are accepted (the limit counts new ones), and the wave may end below its
    // success threshold: the operator looked and said go on.
    const failed = await trx
      .selectFrom('device_jobs')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('job_id', '=', r.job_id)
      .where('wave', '=', r.wave)
      .where('state', '=', 'failed')
      .executeTakeFirstOrThrow();
    await trx.updateTable('rollouts').set({ state: 'running', reason: null, accepted_failures: Number(failed.n), resumed_wave: r.wave, updated_at: now }).where('id', '=', id).execute();
    await releaseHeld(store, trx, r.job_id, { wave: r.wave, released: true }, Number.MAX_SAFE_INTEGER, now);
    await rolloutTickIn(store, trx, id, now);
    return { wave: r.wave + 1, acceptedFailures: Number(failed.n), pausedFor: r.reason };
  });
}

export function cancelRollout(store: CloudStore, id: string, actor: Actor): Promise<RolloutView> {
  return changeRollout(store, id, actor, 'rollout.cancel', async (trx, r, now) => {
    if (r.state === 'completed' || r.state === 'cancelled') throw new CloudStoreError(`rollout ${id} is ${r.state} already`, 'conflict');
    await trx.updateTable('rollouts').set({ state: 'cancelled', reason: `cancelled by ${actor.name}`, updated_at: now, finished_at: now }).where('id', '=', id).execute();
    const stopped = await trx
      .updateTable('device_jobs')
      .set({ state: 'cancelled', detail: 'rollout cancelled', updated_at: now, finished_at: now })
      .where('job_id', '=', r.job_id)
      .where('state', 'in', ['held', 'waiting', 'queued'])
      .executeTakeFirst();
    // Told, and maybe downloading: a worker sends each a cancel notice (rollout-tick.ts claimCancels).
    const told = await trx
      .updateTable('device_jobs')
      .set({ state: 'cancelling', updated_at: now })
      .where('job_id', '=', r.job_id)
      .where('state', 'in', ['notified', 'downloading'])
      .executeTakeFirst();
    const restoring = await trx.selectFrom('device_jobs').select((eb) => eb.fn.countAll<number>().as('n')).where('job_id', '=', r.job_id).where('state', '=', 'downloaded').executeTakeFirstOrThrow();
    return { notSent: Number(stopped.numUpdatedRows), toldToStop: Number(told.numUpdatedRows), finishingRestore: Number(restoring.n) };
  });
}

/** Rollouts a worker's tick looks at: running ones (and cancelled ones with cancel notices to send). */
export async function activeRollouts(store: CloudStore): Promise<string[]> {
  const rows = await store.db.selectFrom('rollouts').select('id').where('state', '=', 'running').orderBy('created_at').execute();
  return rows.map((r) => r.id);
}

/** Devices released so far (the bench's and the console's "ever notified" share needs no more). */
export async function notifiedCount(store: CloudStore, jobId: string): Promise<number> {
  const r = await store.db.selectFrom('device_jobs').select((eb) => eb.fn.countAll<number>().as('n')).where('job_id', '=', jobId).where('pushes', '>', 0).executeTakeFirstOrThrow();
  return Number(r.n);
}
