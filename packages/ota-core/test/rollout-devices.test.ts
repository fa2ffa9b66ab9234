// Rollouts with the real device service on simulated flash, through a real cloud (embedded broker,
// HTTP downloads, signed packages, devices that trust the key): waves that update the devices, a
// rollback rollout that returns them to the older release (allowed with --allow-downgrade, the
// counter not below theirs) with the restore run for real, a cancel that stops a download mid-way
// (the old image untouched) while a device mid-restore finishes, and a device removed or given a new
// secret by another process losing its live session at once.
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startOtaCloud, type OtaCloud } from '../src/cloud/cloud.js';
import { CloudStore } from '../src/cloud/cloud-store.js';
import { cancelRollout, createRollout, getRollout } from '../src/cloud/rollouts.js';
import { deviceHistory } from '../src/cloud/admin/fleet-view.js';
import { createDeviceFlashDir, createFlashDirPort, type FlashDirPort } from '../src/device/flash-port.js';
import { createOtaService } from '../src/device/ota-service.js';
import { connectOtaDevice } from '../src/device/mqtt-link.js';
import type { OtaService, OtaServiceEvent } from '../src/device/service-types.js';
import { openPartition, readBytes } from '@otadiff/patch-apply';
import { firmwarePair, packageKeys, same } from './helpers/ota-rig.js';
import { resolveTrustedKeys } from '../src/device/trusted-keys.js';

const PK = 'a1Waves';
const SPLIT = 16 * 1024;
const ops = { name: 'release-eng', role: 'operator' } as const;
const keys = packageKeys();

interface Dev {
  name: string;
  secret: string;
  port: FlashDirPort;
  svc: OtaService;
  events: OtaServiceEvent[];
  slot(length: number): Uint8Array;
}

let dir: string | undefined;
let cloud: OtaCloud | undefined;
let devices: Dev[] = [];

afterEach(async () => {
  for (const d of devices) {
    await d.svc.stop().catch(() => {});
    await d.port.close().catch(() => {});
  }
  devices = [];
  await cloud?.close();
  cloud = undefined;
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

async function setUp(o: { n: number; size: number; mode?: 'inplace' | 'full'; slowWriteMs?: number }): Promise<{ old: Uint8Array; neu: Uint8Array }> {
  dir = await mkdtemp(join(tmpdir(), 'ota-waves-'));
  const { old, neu } = firmwarePair(o.size, 61);
  cloud = await startOtaCloud({ dataDir: join(dir, 'cloud'), pollMs: 50, rolloutTickMs: 100, revocationPollMs: 100, packageSigningKey: keys.privateKey, verbose: false });
  await cloud.store.addProduct(PK, { mode: o.mode ?? 'inplace', splitSize: SPLIT });
  // 1.0.0 is the release to come back to: --allow-downgrade, the same counter as 2.0.0.
  await cloud.store.addFirmware(PK, '1.0.0', old, { allowDowngrade: true });
  await cloud.store.addFirmware(PK, '2.0.0', neu);
  for (let i = 0; i < o.n; i++) {
    const name = `wave-dev-${i}`;
    const { deviceSecret } = await cloud.store.addDevice(PK, name);
    const flash = join(dir, name);
    createDeviceFlashDir(flash, { image: old, version: '1.0.0', splitSize: SPLIT });
    const port = createFlashDirPort(flash, { trustedKeys: resolveTrustedKeys([keys.publicKey]) });
    if (o.slowWriteMs !== undefined) {
      const write = port.write.bind(port);
      port.write = async (offset, bytes) => {
        await new Promise((r) => setTimeout(r, o.slowWriteMs));
        return write(offset, bytes);
      };
    }
    const events: OtaServiceEvent[] = [];
    const svc = createOtaService({
      productKey: PK,
      deviceName: name,
      deviceSecret,
      broker: cloud.brokerUrl,
      port,
      trustedKeys: [keys.publicKey],
      reconnect: false,
      download: { backoff: { initialMs: 5, maxMs: 50 } },
      onEvent: (e) => events.push(e),
    });
    devices.push({ name, secret: deviceSecret, port, svc, events, slot: (length) => readBytes(openPartition(port.flash, port.layout, 'appA'), 0, length) });
  }
  for (const d of devices) await d.svc.start();
  // Every device has reported 1.0.0.
  for (let i = 0; i < 100 && (await cloud.store.status()).devices.some((x) => x.version !== '1.0.0'); i++) await new Promise((r) => setTimeout(r, 20));
  return { old, neu };
}

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const confirmed = (d: Dev, version: string): boolean => d.events.some((e) => e.type === 'confirmed' && e.version === version) && d.svc.running?.version === version;

describe('rollouts to devices on simulated flash', () => {
  it('updates the devices wave by wave, then a rollback rollout returns them to the older release', async () => {
    const { old, neu } = await setUp({ n: 3, size: 48 * 1024 });
    const up = await createRollout(cloud!.store, { productKey: PK, version: '2.0.0', waves: '1,100%' }, ops);
    await until('the rollout to 2.0.0 to complete', async () => (await getRollout(cloud!.store, up.id))!.state === 'completed').catch(async (e) => { console.log(JSON.stringify(await getRollout(cloud!.store, up.id)), devices.map((d) => JSON.stringify(d.events.filter((x) => x.type === "update-failed" || x.type === "boot")))); throw e; });
    for (const d of devices) {
      expect(confirmed(d, '2.0.0'), d.name).toBe(true);
      expect(same(d.slot(neu.length), neu)).toBe(true);
    }
    const v = (await getRollout(cloud!.store, up.id))!;
    expect(v.waves.map((w) => [w.devices, w.succeeded])).toEqual([
      [1, 1],
      [2, 2],
    ]);

    const back = await createRollout(cloud!.store, { productKey: PK, version: '1.0.0' }, ops);
    expect(back.rollback).toBe(true);
    await until('the rollback to 1.0.0 to complete', async () => (await getRollout(cloud!.store, back.id))!.state === 'completed');
    for (const d of devices) {
      expect(confirmed(d, '1.0.0'), d.name).toBe(true);
      // The signed package allowed the downgrade, at a counter not below the device's.
      expect(d.events.some((e) => e.type === 'header' && e.header.allowDowngrade && e.header.firmwareVersion === '1.0.0' && e.signature === 'ed25519')).toBe(true);
      expect(same(d.slot(old.length), old)).toBe(true);
    }
    const h = await deviceHistory(cloud!.store, PK, devices[2].name);
    expect(h.map((x) => [x.rolloutId, x.version, x.state, x.fromVersion])).toEqual([
      [back.id, '1.0.0', 'succeeded', '2.0.0'],
      [up.id, '2.0.0', 'succeeded', '1.0.0'],
    ]);
  }, 90_000);

  it('cancel stops a download mid-way (the image is untouched); a device whose restore began finishes it', async () => {
    const { old, neu } = await setUp({ n: 1, size: 320 * 1024, mode: 'full', slowWriteMs: 60 });
    const d = devices[0];
    const r = await createRollout(cloud!.store, { productKey: PK, version: '2.0.0' }, ops);
    await until('the download to start', () => d.events.some((e) => e.type === 'download'));
    // From another process, as `serve rollout cancel` would be.
    const other = await CloudStore.open(join(dir!, 'cloud'));
    try {
      await cancelRollout(other, r.id, { name: 'bob', role: 'operator' });
    } finally {
      await other.close();
    }
    const stopped = await until('the device to stop', () => d.events.find((e) => e.type === 'cancelled'));
    expect(stopped).toMatchObject({ version: '2.0.0', reason: 'the cloud cancelled the update to 2.0.0' });
    expect(d.events.some((e) => e.type === 'set-boot' || e.type === 'failed')).toBe(false);
    expect(d.svc.running?.version).toBe('1.0.0');
    expect(same(d.slot(old.length), old)).toBe(true);
    const row = (await deviceHistory(cloud!.store, PK, d.name))[0];
    expect(row.state).toBe('cancelled');
    expect(row.events.map((e) => e.state)).toEqual(expect.arrayContaining(['cancelling', 'cancelled']));

    // A second rollout, cancelled once the device has handed the update to its bootloader: it finishes.
    const again = await createRollout(cloud!.store, { productKey: PK, version: '2.0.0' }, ops);
    await until('set_boot', () => d.events.some((e) => e.type === 'set-boot'), 90_000).catch(async (e) => {
      // Seen once under a loaded full run: say where the device and the cloud were.
      console.log(JSON.stringify(await getRollout(cloud!.store, again.id)), d.events.map((x) => x.type).join(' '), JSON.stringify(await deviceHistory(cloud!.store, PK, d.name)));
      throw e;
    });
    await cancelRollout(cloud!.store, again.id, ops);
    await cloud!.tick();
    await until('the restore to finish', () => confirmed(d, '2.0.0'), 60_000);
    expect(same(d.slot(neu.length), neu)).toBe(true);
    await until('the cloud to see it', async () => (await deviceHistory(cloud!.store, PK, d.name))[0].state === 'succeeded');
  }, 180_000);

  it('a device removed or given a new secret by another process loses its live session at once', async () => {
    await setUp({ n: 2, size: 16 * 1024 });
    const [gone, rotated] = devices;
    const other = await CloudStore.open(join(dir!, 'cloud'));
    try {
      const t0 = Date.now();
      expect(await other.removeDevice(PK, gone.name)).toBe(true);
      await until('the removed device to be disconnected', () => gone.events.some((e) => e.type === 'disconnected'), 5000);
      const fresh = await other.rotateSecret(PK, rotated.name);
      await until('the rotated device to be disconnected', () => rotated.events.some((e) => e.type === 'disconnected'), 5000);
      expect(Date.now() - t0).toBeLessThan(5000);
      // The old secret no longer signs in; the new one does.
      await expect(connectOtaDevice(cloud!.brokerUrl, { productKey: PK, deviceName: rotated.name, deviceSecret: rotated.secret })).rejects.toThrow();
      const c = await connectOtaDevice(cloud!.brokerUrl, { productKey: PK, deviceName: rotated.name, deviceSecret: fresh.deviceSecret });
      await c.close();
      await expect(connectOtaDevice(cloud!.brokerUrl, { productKey: PK, deviceName: gone.name, deviceSecret: gone.secret })).rejects.toThrow();
    } finally {
      await other.close();
    }
  }, 60_000);
});
