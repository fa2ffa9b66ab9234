// What one status write costs with 100 and with 10,000 devices in the database: the same calls the
// cloud makes per message (recordProgress: one row update; recordInform: a read and two updates),
// through the embedded engine (SQLite) with the cloud's durability, timed in one process, one after the other.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudStore, recordInform, recordProgress } from '@otadiff/ota-core';

export interface WriteCost {
  devices: number;
  /** Mean microseconds per progress update and per inform. */
  progressMicros: number;
  informMicros: number;
}

const PK = 'a1StatusCost';

async function measure(devices: number, writes: number, image: Uint8Array): Promise<WriteCost> {
  const dir = await mkdtemp(join(tmpdir(), 'otadiff-status-cost-'));
  const store = await CloudStore.open(join(dir, 'data'), { durability: 'fast', importJson: false });
  try {
    await store.addProduct(PK);
    await store.addFirmware(PK, '1.0.0', image);
    await store.addFirmware(PK, '2.0.0', image.subarray(1));
    const names = Array.from({ length: devices }, (_, i) => `cost-${String(i).padStart(6, '0')}`);
    await store.addDevices(PK, names.map((deviceName) => ({ deviceName })));
    for (const deviceName of names) await recordInform(store, { productKey: PK, deviceName }, '1.0.0');
    await store.createJob({ productKey: PK, version: '2.0.0' });
    // Every device notified, as in a rollout; the writes then hit random devices.
    await store.db.updateTable('device_jobs').set({ state: 'notified', step: null }).execute();
    let seed = 12345;
    const pick = (): string => names[(seed = (seed * 1103515245 + 12345) >>> 0) % devices];
    // Warm the statements and the JIT first: the first size measured must not pay for them.
    for (let i = 0; i < 500; i++) await recordProgress(store, { productKey: PK, deviceName: pick() }, 0, 'warm-up');
    for (let i = 0; i < 500; i++) await recordInform(store, { productKey: PK, deviceName: pick() }, '1.0.0');
    const t0 = performance.now();
    for (let i = 0; i < writes; i++) await recordProgress(store, { productKey: PK, deviceName: pick() }, Math.min(99, Math.floor(i / 10)), 'downloading');
    const t1 = performance.now();
    for (let i = 0; i < writes; i++) await recordInform(store, { productKey: PK, deviceName: pick() }, '1.0.0');
    const t2 = performance.now();
    return { devices, progressMicros: ((t1 - t0) * 1000) / writes, informMicros: ((t2 - t1) * 1000) / writes };
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The cost at each fleet size, same run, on the embedded engine (SQLite, as `serve` runs it). */
export async function statusWriteCost(sizes: number[], writes: number, image: Uint8Array): Promise<WriteCost[]> {
  const out: WriteCost[] = [];
  for (const n of sizes) out.push(await measure(n, writes, image));
  return out;
}
