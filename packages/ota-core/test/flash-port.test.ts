import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generatePackage, packRaw } from '@otadiff/diff-gen';
import { openPartition, readBytes, readHandover, type OverwriteMode } from '@otadiff/patch-apply';
import { createDeviceFlashDir, createFlashDirPort, FlashPortError, type FlashDirPort } from '../src/device/flash-port.js';
import { emptyDeviceState, parseDeviceState, serializeDeviceState, DeviceStateError } from '../src/device/device-state.js';
import { DeviceConfigError, loadDeviceConfig, parseDeviceConfig } from '../src/device/device-config.js';
import { createOtaService } from '../src/device/ota-service.js';
import { OtaServiceError } from '../src/device/service-types.js';
import { startOtaCloud } from '../src/cloud/cloud.js';
import { openNetworkHandles, recordNetworkBaseline } from './helpers/handles.js';
import { testBytes } from './helpers/http.js';
import { firmwarePair, packageKeys } from './helpers/ota-rig.js';
import { resolveTrustedKeys } from '../src/device/trusted-keys.js';

beforeAll(recordNetworkBaseline);
afterAll(async () => {
  expect(await openNetworkHandles()).toEqual([]);
});

let dir = '';
const ports: FlashDirPort[] = [];
afterEach(async () => {
  for (const p of ports.splice(0)) await p.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = '';
});

async function device(o: { programUnit?: number; ab?: boolean; image?: Uint8Array; overwrite?: OverwriteMode } = {}): Promise<FlashDirPort> {
  dir = await mkdtemp(join(tmpdir(), 'ota-port-'));
  createDeviceFlashDir(join(dir, 'dev'), { image: o.image ?? testBytes(20_000, 3), version: '1.0.0', slotSize: 64 * 1024, splitSize: 16 * 1024, programUnit: o.programUnit, ab: o.ab, overwrite: o.overwrite });
  const port = createFlashDirPort(join(dir, 'dev'));
  ports.push(port);
  return port;
}

const sha256 = (b: Uint8Array) => new Uint8Array(createHash('sha256').update(b).digest());

describe('flash-directory port: the five callbacks', () => {
  for (const pu of [1, 4, 16]) {
    it(`writes at any offset and length (program unit ${pu}) and reads them back`, async () => {
      const port = await device({ programUnit: pu });
      const data = testBytes(50_003, pu);
      await port.init(0);
      // Uneven pieces, like network reads.
      for (let off = 0, k = 1; off < data.length; k++) {
        const n = Math.min(((k * 7919) % 3001) + 1, data.length - off);
        await port.write(off, data.subarray(off, off + n));
        off += n;
      }
      expect(Buffer.compare(await port.read(0, data.length), data)).toBe(0);
      // In place: the backup ring holds two chunks and eight sectors (patch-apply's defaultBackupBytes).
      expect(port.info).toMatchObject({ otaSize: 64 * 1024, sectorSize: 4096, slots: ['A'], backupSize: 2 * 16 * 1024 + 8 * 4096, durableUnit: 1 });
    });
  }

  it('init(breakpoint) clears whatever reached the flash past the breakpoint, keeps what is before it', async () => {
    const port = await device({ programUnit: 4 });
    const data = testBytes(40_000, 9);
    await port.init(0);
    await port.write(0, data.subarray(0, 10_001));
    // A write after the breakpoint got (partly) into flash before the power went.
    const ota = openPartition(port.flash, port.layout, 'ota');
    ota.program(10_004, new Uint8Array(64).fill(0x12));
    ota.program(20_480, new Uint8Array(4096).fill(0));
    await port.init(10_001);
    expect(Buffer.compare(await port.read(0, 10_001), data.subarray(0, 10_001))).toBe(0);
    expect((await port.read(10_001, 64 * 1024 - 10_001)).every((b) => b === 0xff)).toBe(true);
    await port.write(10_001, data.subarray(10_001));
    expect(Buffer.compare(await port.read(0, data.length), data)).toBe(0);
    // init(0) erases it all again.
    await port.init(0);
    expect((await port.read(0, 64 * 1024)).every((b) => b === 0xff)).toBe(true);
  });

  it('on program-once (ECC) flash: uneven writes program each unit once; a partial last unit is held until it fills or set_boot', async () => {
    const { old, neu } = firmwarePair(48 * 1024, 12);
    const port = await device({ programUnit: 16, overwrite: 'program-once', image: old });
    expect(port.info.durableUnit).toBe(16);
    const { package: pkg, header } = await generatePackage(old, neu, { mode: 'inplace', splitSize: 16 * 1024 });
    expect((await port.powerOn()).kind).toBe('normal');
    await port.init(0);
    // Uneven pieces, like network reads: every one that ends inside a unit would re-program it.
    const ota = openPartition(port.flash, port.layout, 'ota');
    let off = 0;
    for (let k = 1; off < pkg.length; k++) {
      const n = Math.min(((k * 7919) % 3001) + 1, pkg.length - off);
      await port.write(off, pkg.subarray(off, off + n));
      off += n;
      // What the flash holds ends at the last whole unit; the rest is in RAM, and reads see it.
      const durable = Math.floor(off / 16) * 16;
      if (durable < off) expect(readBytes(ota, durable, 16).every((b) => b === 0xff)).toBe(true);
    }
    expect(Buffer.compare(await port.read(0, pkg.length), pkg)).toBe(0);
    // A rewind to a breakpoint inside the held unit keeps the bytes before it.
    const back = pkg.length - 5;
    await port.init(back);
    await port.write(back, pkg.subarray(back));
    expect(Buffer.compare(await port.read(0, pkg.length), pkg)).toBe(0);
    await port.setBoot({ result: 'finish', firmwareType: 'diff', splitSize: header.splitSize, diffVersion: header.diffVersion, packageLength: pkg.length, packageSha256: sha256(pkg) });
    // set_boot programmed the last unit (padded with erased bytes).
    expect(Buffer.compare(readBytes(ota, 0, pkg.length), pkg)).toBe(0);
    expect(await port.powerOn()).toEqual({ kind: 'trial', slot: 'A', attempt: 1 });
    expect(Buffer.compare(await port.readImage(0, neu.length), neu)).toBe(0);
  });

  it('on program-once flash a write into a unit that reached the flash is refused, not programmed twice', async () => {
    const port = await device({ programUnit: 16, overwrite: 'program-once' });
    await port.init(0);
    await port.write(0, testBytes(40, 2)); // units 0-1 programmed, 8 bytes of unit 2 held
    await expect(port.write(20, testBytes(4, 3))).rejects.toThrow(/programmed already/);
    // The held bytes were not lost by the refusal.
    expect(Buffer.compare(await port.read(0, 40), testBytes(40, 2))).toBe(0);
  });

  it('refuses spans outside the OTA partition', async () => {
    const port = await device();
    await expect(port.write(64 * 1024 - 2, new Uint8Array(3))).rejects.toThrow(FlashPortError);
    await expect(port.read(-1, 1)).rejects.toThrow(FlashPortError);
    await expect(port.init(64 * 1024 + 1)).rejects.toThrow(FlashPortError);
    await expect(port.init(1.5)).rejects.toThrow(FlashPortError);
    await expect(port.rollback()).rejects.toThrow(/has not booted/);
  });

  it('set_boot (diff) hands the package to boot(); rollback() confirms the new image', async () => {
    const { old, neu } = firmwarePair(48 * 1024, 4);
    const port = await device({ image: old });
    const { package: pkg, header } = await generatePackage(old, neu, { mode: 'inplace', splitSize: 16 * 1024 });
    expect((await port.powerOn()).kind).toBe('normal');
    await port.init(0);
    await port.write(0, pkg);
    await expect(port.setBoot({ result: 'finish', firmwareType: 'diff', splitSize: 8192, packageLength: pkg.length, packageSha256: sha256(pkg) })).rejects.toThrow(/split size/);
    await port.setBoot({ result: 'finish', firmwareType: 'diff', splitSize: header.splitSize, diffVersion: header.diffVersion, packageLength: pkg.length, packageSha256: sha256(pkg) });
    const h = readHandover(openPartition(port.flash, port.layout, 'params'))!;
    expect(h).toMatchObject({ result: 'finish', firmwareType: 'diff', targetSlot: 'A', activeSlot: 'A', rollback: true, confirmed: false, packageLength: pkg.length });
    expect(await port.powerOn()).toEqual({ kind: 'trial', slot: 'A', attempt: 1 });
    expect(Buffer.compare(await port.readImage(0, neu.length), neu)).toBe(0);
    await port.rollback();
    expect(await port.powerOn()).toEqual({ kind: 'normal', slot: 'A' });
  });

  it('set_boot (raw) on an A/B device targets the other slot; BREAKPOINT restores nothing', async () => {
    const port = await device({ ab: true });
    const image = testBytes(30_000, 8);
    const pkg = packRaw(image, { splitSize: 16 * 1024 }).package;
    await port.powerOn();
    await port.init(0);
    await port.write(0, pkg);
    await port.setBoot({ result: 'breakpoint', firmwareType: 'raw', packageLength: 1000, packageSha256: sha256(pkg.subarray(0, 1000)) });
    expect(await port.powerOn()).toEqual({ kind: 'normal', slot: 'A' });
    // set_boot reads the raw package's header: a diff cannot go as OTA_RAW, nor a raw package as a diff.
    await expect(port.setBoot({ result: 'finish', firmwareType: 'diff', packageLength: pkg.length, packageSha256: sha256(pkg) })).rejects.toThrow(/cannot hand over a raw package/);
    await port.setBoot({ result: 'finish', firmwareType: 'raw', packageLength: pkg.length, packageSha256: sha256(pkg) });
    expect(readHandover(openPartition(port.flash, port.layout, 'params'))).toMatchObject({ firmwareType: 'raw', imageSize: image.length, targetSlot: 'B' });
    expect(await port.powerOn()).toEqual({ kind: 'trial', slot: 'B', attempt: 1 });
    expect(Buffer.compare(await port.readImage(0, image.length), image)).toBe(0);
    await expect(port.setBoot({ result: 'finish', firmwareType: 'raw', packageLength: 0, packageSha256: sha256(pkg) })).rejects.toThrow(/empty/);
  });

  it('set_boot (raw) refuses a bare image: OTA_RAW is a raw package now', async () => {
    const port = await device();
    const image = testBytes(30_000, 9);
    await port.powerOn();
    await port.init(0);
    await port.write(0, image);
    await expect(port.setBoot({ result: 'finish', firmwareType: 'raw', packageLength: image.length, packageSha256: sha256(image) })).rejects.toThrow(/not a usable package/);
    expect(readHandover(openPartition(port.flash, port.layout, 'params'))).toBeNull();
  });

  it('the bootloader of a port with trusted keys refuses an unsigned package before touching anything', async () => {
    const { old, neu } = firmwarePair(48 * 1024, 6);
    const port = await device({ image: old });
    const keys = packageKeys();
    const signed = await generatePackage(old, neu, { mode: 'inplace', splitSize: 16 * 1024, signingKey: keys.privateKey, securityCounter: 3 });
    const unsigned = await generatePackage(old, neu, { mode: 'inplace', splitSize: 16 * 1024 });
    await port.close();
    const strict = createFlashDirPort(join(dir, 'dev'), { trustedKeys: resolveTrustedKeys([keys.publicKey]) });
    ports.push(strict);
    expect((await strict.powerOn()).kind).toBe('normal');
    expect(await strict.securityCounter()).toBe(0);
    await strict.init(0);
    await strict.write(0, unsigned.package);
    await strict.setBoot({ result: 'finish', firmwareType: 'diff', packageLength: unsigned.package.length, packageSha256: sha256(unsigned.package) });
    expect(await strict.powerOn()).toMatchObject({ kind: 'old', slot: 'A', reason: 'signature' });
    expect(Buffer.compare(await strict.readImage(0, old.length), old)).toBe(0);
    // The signed one goes, and confirming it records its security counter.
    await strict.init(0);
    await strict.write(0, signed.package);
    await strict.setBoot({ result: 'finish', firmwareType: 'diff', packageLength: signed.package.length, packageSha256: sha256(signed.package) });
    expect(await strict.powerOn()).toEqual({ kind: 'trial', slot: 'A', attempt: 1 });
    await strict.rollback();
    expect(await strict.securityCounter()).toBe(3);
  });

  it('keeps the service state in DIR/device.json, written atomically', async () => {
    const port = await device();
    const s = parseDeviceState((await port.loadState())!);
    expect(s.slots).toEqual({ A: { version: '1.0.0', size: 20_000 } });
    s.pending = { slot: 'A', version: '1.1.0', size: 100, firmwareType: 'diff' };
    await port.saveState(serializeDeviceState(s));
    expect(parseDeviceState((await port.loadState())!).pending).toEqual(s.pending);
    expect(() => createDeviceFlashDir(join(dir, 'dev'), { image: testBytes(10), version: '1.0.0' })).toThrow(/already holds/);
  });
});

describe('device state codec', () => {
  it('round-trips, with a checkpoint', () => {
    const s = emptyDeviceState();
    s.slots = { A: { version: '1.0.0', size: 10 }, B: { version: '2.0.0-rc.1', size: 12 } };
    s.download = {
      version: '2.0.0',
      size: 1000,
      signMethod: 'SHA256',
      sign: 'ab'.repeat(32),
      isDiff: 1,
      checkpoint: { algorithm: 'sha256', offset: 128, totalSize: 1000, expectedDigest: 'ab'.repeat(32), etag: '"x"', hashState: new Uint8Array([1, 2, 3]) },
    };
    expect(parseDeviceState(serializeDeviceState(s))).toEqual(s);
  });

  it('refuses malformed files', () => {
    const good = JSON.parse(serializeDeviceState({ slots: { A: { version: '1.0.0', size: 1 } } }));
    const bad = (patch: (o: Record<string, any>) => void) => {
      const o = structuredClone(good);
      patch(o);
      return () => parseDeviceState(JSON.stringify(o));
    };
    expect(() => parseDeviceState('{')).toThrow(DeviceStateError);
    expect(bad((o) => (o.format = 'x'))).toThrow(DeviceStateError);
    expect(bad((o) => (o.slots.C = { version: '1', size: 1 }))).toThrow(/slot/);
    expect(bad((o) => (o.slots.A.version = '../1'))).toThrow(/version/);
    expect(bad((o) => (o.slots.A.size = -1))).toThrow(/size/);
    expect(bad((o) => (o.pending = { slot: 'A', version: '1.0.1', size: 1, firmwareType: 'zip' }))).toThrow(/firmwareType/);
    expect(bad((o) => (o.download = { version: '2', size: 1, signMethod: 'SHA256', sign: 'AB'.repeat(32), isDiff: 0 }))).toThrow(/sign/);
    expect(bad((o) => (o.download = { version: '2', size: 1, signMethod: 'SHA256', sign: 'ab'.repeat(32), isDiff: 0, checkpoint: 'AAAA' }))).toThrow(/checkpoint/);
    expect(() => parseDeviceState(' '.repeat(70_000))).toThrow(/too large/);
  });
});

describe('default identity from the device config file', () => {
  it('parses and validates the config', () => {
    const c = parseDeviceConfig(JSON.stringify({ productKey: 'a1P', deviceName: 'dev-1234', deviceSecret: 's3cret', flash: 'flash' }), '/base');
    expect(c).toEqual({ productKey: 'a1P', deviceName: 'dev-1234', deviceSecret: 's3cret', flash: '/base/flash' });
    expect(() => parseDeviceConfig('{"productKey":"a/b","deviceName":"dev-1234","deviceSecret":"x"}')).toThrow(DeviceConfigError);
    expect(() => parseDeviceConfig('{"productKey":"a1P","deviceName":"dev-1234","deviceSecret":"x","broker":"http://x"}')).toThrow(/broker/);
    expect(() => loadDeviceConfig('/nonexistent/otadiff-device.json')).toThrow(/no such file/);
  });

  it('createOtaService() without options signs in with the identity in $OTADIFF_DEVICE_CONFIG', async () => {
    dir = await mkdtemp(join(tmpdir(), 'ota-cfg-'));
    const cloud = await startOtaCloud({ dataDir: join(dir, 'cloud'), pollMs: 0 });
    const saved = process.env.OTADIFF_DEVICE_CONFIG;
    try {
      await cloud.store.addProduct('a1CfgProd');
      const dev = await cloud.store.addDevice('a1CfgProd', 'cfg-device');
      createDeviceFlashDir(join(dir, 'flash'), { image: testBytes(5000), version: '3.1.4' });
      await writeFile(join(dir, 'device.json'), JSON.stringify({ ...dev, broker: cloud.brokerUrl, flash: 'flash' }));
      process.env.OTADIFF_DEVICE_CONFIG = join(dir, 'nope.json');
      expect(() => createOtaService()).toThrow(OtaServiceError);
      process.env.OTADIFF_DEVICE_CONFIG = join(dir, 'device.json');
      const svc = createOtaService();
      const informed = cloud.waitFor((e) => e.type === 'inform', 10_000);
      await svc.start();
      expect(await informed).toMatchObject({ device: { productKey: 'a1CfgProd', deviceName: 'cfg-device' }, version: '3.1.4' });
      await svc.close();
      // close() released the port the service opened from the config: it opens again.
      const again = createFlashDirPort(join(dir, 'flash'));
      ports.push(again);
      expect(Buffer.compare(readBytes(openPartition(again.flash, again.layout, 'appA'), 0, 5000), testBytes(5000))).toBe(0);
    } finally {
      if (saved === undefined) delete process.env.OTADIFF_DEVICE_CONFIG;
      else process.env.OTADIFF_DEVICE_CONFIG = saved;
      await cloud.close();
    }
  });
});
