// Cloud processes sharing one database: each registers a row and beats its heart every second. A
// worker whose heart stopped (SIGKILL, a lost machine) is taken over by a live one: it claims the
// row, resumes the dead worker's broker session to handle the messages the broker kept for it, and
// marks it reaped. A worker that finds itself reaped (it only stalled) stops using its session.

import { randomBytes } from 'node:crypto';
import type { CloudStore } from './cloud-store.js';

export interface WorkerRow {
  id: string;
  clientId: string;
}

export const newWorkerId = (): string => `w${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
export const workerClientId = (id: string): string => `otadiff-cloud-${id}`;

export async function registerWorker(store: CloudStore, id = newWorkerId(), now = Date.now()): Promise<WorkerRow> {
  const clientId = workerClientId(id);
  await store.db
    .insertInto('workers')
    .values({ id, client_id: clientId, started_at: now, heartbeat_at: now, state: 'live', reaped_by: null })
    .onConflict((oc) => oc.column('id').doUpdateSet({ client_id: clientId, started_at: now, heartbeat_at: now, state: 'live', reaped_by: null }))
    .execute();
  return { id, clientId };
}

/** False when the worker is no longer live (another one reaped it). */
export async function heartbeat(store: CloudStore, id: string, now = Date.now()): Promise<boolean> {
  const r = await store.db.updateTable('workers').set({ heartbeat_at: now }).where('id', '=', id).where('state', '=', 'live').executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

/** Live workers whose heart stopped `staleMs` ago, not counting `me`. */
export async function deadWorkers(store: CloudStore, me: string, staleMs: number, now = Date.now()): Promise<WorkerRow[]> {
  const rows = await store.db
    .selectFrom('workers')
    .select(['id', 'client_id'])
    .where('state', '=', 'live')
    .where('heartbeat_at', '<', now - staleMs)
    .where('id', '!=', me)
    .execute();
  return rows.map((r) => ({ id: r.id, clientId: r.client_id }));
}

/** Takes the dead worker's row; false when another worker was first. */
export async function claimDead(store: CloudStore, me: string, dead: string): Promise<boolean> {
  const r = await store.db.updateTable('workers').set({ state: 'reaping', reaped_by: me }).where('id', '=', dead).where('state', '=', 'live').executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

export async function setWorkerState(store: CloudStore, id: string, state: 'reaped' | 'retired'): Promise<void> {
  await store.db.updateTable('workers').set({ state }).where('id', '=', id).execute();
}
