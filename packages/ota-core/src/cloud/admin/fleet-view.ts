// What the console and the API read about the fleet: pages of devices (a cursor, never an offset:
// a page costs the same at the millionth device), one device with its history of every job and
// rollout it took part in (each state change with its time), a summary per product, and a rollout's
// devices updated and failed over time.

import { CloudStoreError, type CloudStore } from '../cloud-store.js';
import type { DeviceJobState } from '../db/schema.js';
import { tagsOfMany } from '../device-tags.js';

export interface DeviceSummary {
  productKey: string;
  deviceName: string;
  version: string | null;
  lastSeen: number | null;
  /** The current job's state; idle (seen, no job) or never-seen without one. */
  state: DeviceJobState | 'idle' | 'never-seen';
  tags: string[];
  recordedCounter: number;
  job: { id: string; version: string; state: DeviceJobState; step: number | null; detail: string | null; rolloutId: string | null; wave: number | null } | null;
}

export class CursorError extends CloudStoreError {}

function encodeCursor(pk: string, dn: string): string {
  return Buffer.from(JSON.stringify([pk, dn]), 'utf8').toString('base64url');
}

function decodeCursor(c: string): [string, string] {
  try {
    const v = JSON.parse(Buffer.from(c, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'string' && v[0].length <= 64 && v[1].length <= 64) return [v[0], v[1]];
  } catch {
    /* below */
  }
  throw new CursorError('cursor is not one this API gave out');
}

export async function listDevices(store: CloudStore, o: { productKey?: string; deviceName?: string; tag?: string; limit: number; cursor?: string }): Promise<{ devices: DeviceSummary[]; nextCursor?: string }> {
  let q = store.db
    .selectFrom('devices as d')
    .leftJoin('device_jobs as j', (join) => join.onRef('j.job_id', '=', 'd.current_job').onRef('j.product_key', '=', 'd.product_key').onRef('j.device_name', '=', 'd.device_name'))
    .leftJoin('jobs as jb', 'jb.id', 'd.current_job')
    .leftJoin('rollouts as r', 'r.job_id', 'd.current_job')
    .select(['d.product_key', 'd.device_name', 'd.version', 'd.last_seen', 'd.recorded_counter', 'd.current_job', 'jb.version as target', 'j.state', 'j.step', 'j.detail', 'j.wave', 'r.id as rollout'])
    .orderBy('d.product_key')
    .orderBy('d.device_name')
    .limit(o.limit + 1);
  if (o.productKey !== undefined) q = q.where('d.product_key', '=', o.productKey);
  if (o.deviceName !== undefined) q = q.where('d.device_name', '=', o.deviceName);
  if (o.tag !== undefined) {
    const tag = o.tag;
    q = q.where((eb) =>
      eb.exists(eb.selectFrom('device_tags as t').select('t.tag').whereRef('t.product_key', '=', 'd.product_key').whereRef('t.device_name', '=', 'd.device_name').where('t.tag', '=', tag)),
    );
  }
  if (o.cursor !== undefined) {
    const [pk, dn] = decodeCursor(o.cursor);
    q = q.where((eb) => eb.or([eb('d.product_key', '>', pk), eb.and([eb('d.product_key', '=', pk), eb('d.device_name', '>', dn)])]));
  }
  const rows = await q.execute();
  const page = rows.slice(0, o.limit);
  const tags = new Map<string, string[]>();
  for (const pk of new Set(page.map((r) => r.product_key))) {
    for (const [dn, t] of await tagsOfMany(store.db, pk, page.filter((r) => r.product_key === pk).map((r) => r.device_name))) tags.set(`${pk}/${dn}`, t);
  }
  const devices = page.map(
    (r): DeviceSummary => ({
      productKey: r.product_key,
      deviceName: r.device_name,
      version: r.version,
      lastSeen: r.last_seen === null ? null : Number(r.last_seen),
      state: r.state ?? (r.version === null ? 'never-seen' : 'idle'),
      tags: tags.get(`${r.product_key}/${r.device_name}`) ?? [],
      recordedCounter: Number(r.recorded_counter),
      job:
        r.current_job === null || r.state === null || r.target === null
          ? null
          : { id: r.current_job, version: r.target, state: r.state, step: r.step, detail: r.detail, rolloutId: r.rollout, wave: r.wave === null ? null : Number(r.wave) },
    }),
  );
  const last = page[page.length - 1];
  return rows.length > o.limit ? { devices, nextCursor: encodeCursor(last.product_key, last.device_name) } : { devices };
}

export async function getDevice(store: CloudStore, productKey: string, deviceName: string): Promise<DeviceSummary> {
  const d = (await listDevices(store, { productKey, deviceName, limit: 1 })).devices[0];
  if (d === undefined) throw new CloudStoreError(`unknown device ${productKey}/${deviceName}`, 'not-found');
  return d;
}

export interface HistoryEntry {
  jobId: string;
  rolloutId: string | null;
  version: string;
  state: DeviceJobState;
  wave: number | null;
  fromVersion: string | null;
  pushes: number;
  attempts: number;
  createdAt: number;
  events: Array<{ state: DeviceJobState; step: number | null; detail: string | null; at: number }>;
}

/** Every job and rollout the device took part in, newest first, each with its state changes in order. */
export async function deviceHistory(store: CloudStore, productKey: string, deviceName: string): Promise<HistoryEntry[]> {
  const known = await store.db.selectFrom('devices').select('device_name').where('product_key', '=', productKey).where('device_name', '=', deviceName).executeTakeFirst();
  if (known === undefined) throw new CloudStoreError(`unknown device ${productKey}/${deviceName}`, 'not-found');
  const rows = await store.db
    .selectFrom('device_jobs as j')
    .innerJoin('jobs as jb', 'jb.id', 'j.job_id')
    .leftJoin('rollouts as r', 'r.job_id', 'j.job_id')
    .select(['j.id', 'j.job_id', 'r.id as rollout', 'jb.version', 'j.state', 'j.wave', 'j.from_version', 'j.pushes', 'j.attempts', 'j.created_at'])
    .where('j.product_key', '=', productKey)
    .where('j.device_name', '=', deviceName)
    .orderBy('j.created_at', 'desc')
    .orderBy('j.id', 'desc')
    .limit(200)
    .execute();
  const events = await store.db
    .selectFrom('device_job_events')
    .select(['device_job_id', 'state', 'step', 'detail', 'at'])
    .where('product_key', '=', productKey)
    .where('device_name', '=', deviceName)
    .orderBy('id')
    .execute();
  return rows.map((r) => ({
    jobId: r.job_id,
    rolloutId: r.rollout,
    version: r.version,
    state: r.state,
    wave: r.wave === null ? null : Number(r.wave),
    fromVersion: r.from_version,
    pushes: Number(r.pushes),
    attempts: Number(r.attempts),
    createdAt: Number(r.created_at),
    events: events.filter((e) => Number(e.device_job_id) === Number(r.id)).map((e) => ({ state: e.state, step: e.step, detail: e.detail, at: Number(e.at) })),
  }));
}

/** Per product: devices, and how many run each version and are in each state of their current job. */
export async function fleetSummary(store: CloudStore): Promise<Array<{ productKey: string; devices: number; versions: Record<string, number>; states: Record<string, number> }>> {
  const versions = await store.db.selectFrom('devices').select(['product_key', 'version', (eb) => eb.fn.countAll<number>().as('n')]).groupBy(['product_key', 'version']).execute();
  const states = await store.db
    .selectFrom('devices as d')
    .leftJoin('device_jobs as j', (join) => join.onRef('j.job_id', '=', 'd.current_job').onRef('j.product_key', '=', 'd.product_key').onRef('j.device_name', '=', 'd.device_name'))
    .select(['d.product_key', 'j.state', (eb) => eb.fn.countAll<number>().as('n')])
    .groupBy(['d.product_key', 'j.state'])
    .execute();
  const out = new Map<string, { productKey: string; devices: number; versions: Record<string, number>; states: Record<string, number> }>();
  for (const p of await store.productList()) out.set(p.productKey, { productKey: p.productKey, devices: 0, versions: {}, states: {} });
  for (const v of versions) {
    const e = out.get(v.product_key);
    if (e === undefined) continue;
    e.devices += Number(v.n);
    e.versions[v.version ?? 'never seen'] = Number(v.n);
  }
  for (const s of states) {
    const e = out.get(s.product_key);
    if (e !== undefined) e.states[s.state ?? 'idle'] = Number(s.n);
  }
  return [...out.values()];
}

/** A rollout's devices updated and failed (and ever notified) over time, at most `points` points. */
export async function rolloutTimeline(store: CloudStore, jobId: string, since: number, points = 200): Promise<Array<{ t: number; updated: number; failed: number; notified: number }>> {
  const events = await store.db
    .selectFrom('device_job_events')
    .select(['device_job_id', 'state', 'at'])
    .where('job_id', '=', jobId)
    .where('state', 'in', ['notified', 'succeeded', 'failed'])
    .orderBy('at')
    .orderBy('id')
    .execute();
  // Each device counts once per kind: its first notice, and its latest outcome.
  const told = new Set<number>();
  const outcome = new Map<number, 'succeeded' | 'failed'>();
  let updated = 0;
  let failed = 0;
  const raw: Array<{ t: number; updated: number; failed: number; notified: number }> = [{ t: since, updated: 0, failed: 0, notified: 0 }];
  for (const e of events) {
    const id = Number(e.device_job_id);
    if (e.state === 'notified') told.add(id);
    else {
      const was = outcome.get(id);
      if (was === 'succeeded') updated--;
      if (was === 'failed') failed--;
      outcome.set(id, e.state as 'succeeded' | 'failed');
      if (e.state === 'succeeded') updated++;
      else failed++;
    }
    raw.push({ t: Number(e.at), updated, failed, notified: told.size });
  }
  if (raw.length <= points) return raw;
  // The first and the last point, and evenly spaced ones between.
  const out: typeof raw = [raw[0]];
  for (let i = 1; i < points; i++) out.push(raw[Math.round((i * (raw.length - 1)) / (points - 1))]);
  return out;
}
