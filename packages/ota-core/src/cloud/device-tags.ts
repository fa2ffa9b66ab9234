// Device tags: labels an operator puts on devices (a site, a hardware revision, "canary") so a
// rollout can target some of a product's devices. A tag is 1-64 of letters, digits and _ . : -.

import type { Kysely, Transaction } from 'kysely';
import type { Database } from './db/schema.js';

const TAG_RE = /^[A-Za-z0-9_.:-]{1,64}$/;
/** Tags a device may carry, and a rollout may name. */
export const MAX_TAGS = 32;

export class TagError extends Error {
  override name = 'TagError';
}

export const isValidTag = (t: unknown): t is string => typeof t === 'string' && TAG_RE.test(t);

/** Distinct valid tags, or a TagError naming the bad one. */
export function checkTags(tags: readonly unknown[], what = 'tag'): string[] {
  for (const t of tags) if (!isValidTag(t)) throw new TagError(`${what} ${JSON.stringify(String(t).slice(0, 70))} is not 1-64 of letters, digits and _ . : -`);
  const out = [...new Set(tags as string[])];
  if (out.length > MAX_TAGS) throw new TagError(`at most ${MAX_TAGS} tags`);
  return out;
}

type Db = Kysely<Database> | Transaction<Database>;

export async function addTags(db: Db, productKey: string, deviceName: string, tags: readonly string[]): Promise<void> {
  if (tags.length === 0) return;
  await db
    .insertInto('device_tags')
    .values(tags.map((tag) => ({ product_key: productKey, device_name: deviceName, tag })))
    .onConflict((oc) => oc.columns(['product_key', 'device_name', 'tag']).doNothing())
    .execute();
}

export async function removeTags(db: Db, productKey: string, deviceName: string, tags: readonly string[]): Promise<void> {
  if (tags.length === 0) return;
  await db.deleteFrom('device_tags').where('product_key', '=', productKey).where('device_name', '=', deviceName).where('tag', 'in', [...tags]).execute();
}

export async function tagsOf(db: Db, productKey: string, deviceName: string): Promise<string[]> {
  const rows = await db.selectFrom('device_tags').select('tag').where('product_key', '=', productKey).where('device_name', '=', deviceName).orderBy('tag').execute();
  return rows.map((r) => r.tag);
}

/** Tags of many devices of one product at once (a page of the device list). */
export async function tagsOfMany(db: Db, productKey: string, deviceNames: readonly string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  if (deviceNames.length === 0) return out;
  const rows = await db.selectFrom('device_tags').select(['device_name', 'tag']).where('product_key', '=', productKey).where('device_name', 'in', [...deviceNames]).orderBy('tag').execute();
  for (const r of rows) {
    let l = out.get(r.device_name);
    if (l === undefined) out.set(r.device_name, (l = []));
    l.push(r.tag);
  }
  return out;
}

/** Devices of a product carrying any of `tags`, by name. */
export async function devicesTagged(db: Db, productKey: string, tags: readonly string[]): Promise<string[]> {
  if (tags.length === 0) return [];
  const rows = await db.selectFrom('device_tags').select('device_name').distinct().where('product_key', '=', productKey).where('tag', 'in', [...tags]).orderBy('device_name').execute();
  return rows.map((r) => r.device_name);
}
