// A cloud (startOtaCloud over a temp data dir) and one device (a flash directory
// wrapped in a FaultyFlash, driven by createOtaService), on loopback.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KeyLike, KeyObject } from 'node:crypto';
import { generateKeyPair, loadPrivateKey } from '@otadiff/diff-gen';
import { FaultyFlash, openPartition, readBytes, type OverwriteMode, type Slot, type TearMode } from '@otadiff/patch-apply';
import { startOtaCloud, type OtaCloud, type OtaCloudOptions } from '../../src/cloud/cloud.js';
import type { PackageMode } from '../../src/cloud/cloud-store.js';
import { createDeviceFlashDir, createFlashDirPort, type FlashDirPort } from '../../src/device/flash-port.js';
import { createOtaService } from '../../src/device/ota-service.js';
import type { OtaService, OtaServiceEvent, OtaServiceOptions } from '../../src/device/service-types.js';
import { resolveTrustedKeys } from '../../src/device/trusted-keys.js';
import { testBytes } from './http.js';

export const PK = 'a1RigProd01';
export const DN = 'rig-device-01';
export const SPLIT = 16 * 1024;

/** OLD and a NEW that shares most of it (edits, an inserted block, a longer tail). */
export function firmwarePair(size: number, seed = 7): { old: Uint8Array; neu: Uint8Array } {
  const old = testBytes(size, seed);
  const neu = new Uint8Array(size + 3000);
  neu.set(old.subarray(0, size / 2));
  neu.set(testBytes(1500, seed + 1), size / 2);
  neu.set(old.subarray(size / 2, size - 1500), size / 2 + 1500);
  neu.set(testBytes(3000, seed + 2), size);
  for (let i = 0; i < 64; i++) neu[(i * 7919) % size] ^= 0x5a;
  return { old, neu };
}

export interface RigOptions {
  old: Uint8Array;
  neu: Uint8Array;
  /** Product package mode (default inplace). */
  mode?: PackageMode;
  /** Device with two slots (default: mode === 'ab'). */
  deviceAb?: boolean;
  cloud?: Partial<OtaCloudOptions>;
  service?: Partial<OtaServiceOptions>;
  signingKey?: KeyLike;
  /** The cloud signs its packages with this key (see `packageKeys()`). */
  packageSigningKey?: KeyObject;
  /** Public keys (PEM) the device's service and bootloader trust. */
  trustedKeys?: string[];
  /** Security counters of the store's 1.0.0 and 2.0.0 (default 0 and 0). */
  counters?: { old?: number; neu?: number };
  tear?: TearMode;
  /** Version the device's factory image claims (default 1.0.0, the store's OLD). */
  deviceVersion?: string;
  /** The device takes its notices over CoAP from the cloud's CoAP server. */
  coapNotices?: boolean;
  /** The device flash's program unit and overwrite rule (default 1 byte, 'error'). */
  flash?: { programUnit?: number; overwrite?: OverwriteMode };
}

export interface Rig {
  dir: string;
  cloud: OtaCloud;
  port: FlashDirPort;
  faulty: FaultyFlash;
  svc: OtaService;
  events: OtaServiceEvent[];
  deviceSecret: string;
  slotBytes(slot: Slot, length: number): Uint8Array;
  close(): Promise<void>;
}

export async function startRig(o: RigOptions): Promise<Rig> {
  const dir = await mkdtemp(join(tmpdir(), 'ota-rig-'));
  const cloud = await startOtaCloud({ dataDir: join(dir, 'cloud'), pollMs: 0, signingKey: o.signingKey, packageSigningKey: o.packageSigningKey, ...o.cloud });
  const mode = o.mode ?? 'inplace';
  try {
    await cloud.store.addProduct(PK, { mode, splitSize: SPLIT });
    const dev = await cloud.store.addDevice(PK, DN);
    await cloud.store.addFirmware(PK, '1.0.0', o.old, { securityCounter: o.counters?.old ?? 0 });
    await cloud.store.addFirmware(PK, '2.0.0', o.neu, { securityCounter: o.counters?.neu ?? 0 });
    const devDir = join(dir, 'device');
    createDeviceFlashDir(devDir, { image: o.old, version: o.deviceVersion ?? '1.0.0', ab: o.deviceAb ?? mode === 'ab', splitSize: SPLIT, ...o.flash });
    let faulty!: FaultyFlash;
    const trustedKeys = o.trustedKeys === undefined ? undefined : resolveTrustedKeys(o.trustedKeys);
    const port = createFlashDirPort(devDir, { trustedKeys, wrapFlash: (f) => (faulty = new FaultyFlash(f, { tear: o.tear ?? 'random', seed: 5 })) });
    const events: OtaServiceEvent[] = [];
    const svc = createOtaService({
      productKey: PK,
      deviceName: DN,
      deviceSecret: dev.deviceSecret,
      broker: o.coapNotices ? cloud.coap.url : cloud.brokerUrl,
      ...(o.coapNotices ? { transport: 'coap' as const, noticePollMs: 20 } : {}),
      port,
      reconnect: false,
      download: { backoff: { initialMs: 5, maxMs: 50 } },
      onEvent: (e) => events.push(e),
      ...(o.trustedKeys === undefined ? {} : { trustedKeys: o.trustedKeys }),
      ...o.service,
    });
    return {
      dir,
      cloud,
      port,
      faulty,
      svc,
      events,
      deviceSecret: dev.deviceSecret,
      slotBytes: (slot, length) => readBytes(openPartition(port.flash, port.layout, slot === 'A' ? 'appA' : 'appB'), 0, length),
      async close() {
        await svc.stop();
        await port.close();
        await cloud.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await cloud.close();
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
}

/** A package signing key pair: `privateKey` for the cloud (or packRaw / generatePackage), `publicKey` PEM for devices. */
export function packageKeys(type: 'ed25519' | 'ecdsa-p256' | 'rsa-2048' = 'ed25519'): { privateKey: KeyObject; publicKey: string } {
  const pair = generateKeyPair(type);
  return { privateKey: loadPrivateKey(pair.privateKey), publicKey: pair.publicKey };
}

export const same = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && Buffer.compare(a, b) === 0;
