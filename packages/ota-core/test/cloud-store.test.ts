// The cloud store's releases (security counter, allow-downgrade, version length) and the signed
// packages it generates: diffs and raw (OTA_RAW) packages.
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPublicKey } from 'node:crypto';
import { checkTrust, recordsOffset, SignatureType, type PackageHeader } from '@otadiff/patch-apply';
import { CloudStore, CloudStoreError } from '../src/cloud/cloud-store.js';
import { DeviceConfigError, parseDeviceConfig } from '../src/device/device-config.js';
import { resolveTrustedKeys, TrustedKeyError } from '../src/device/trusted-keys.js';
import { firmwarePair, packageKeys } from './helpers/ota-rig.js';
import { testBytes } from './helpers/http.js';

let dir = '';
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = '';
});

async function store(opts: Parameters<typeof CloudStore.open>[1] = {}, mode: 'inplace' | 'full' = 'inplace'): Promise<CloudStore> {
  dir ||= await mkdtemp(join(tmpdir(), 'ota-store-'));
  const s = await CloudStore.open(join(dir, 'data'), opts);
  if (s.product('a1Store') === undefined) await s.addProduct('a1Store', { mode, splitSize: 16 * 1024 });
  return s;
}

const pair = firmwarePair(48 * 1024, 51);
const keys = packageKeys();

function trusted(pkg: Uint8Array, h: PackageHeader, securityCounter?: number): void {
  checkTrust(h, pkg.subarray(0, h.headerLength), pkg.subarray(h.headerLength, recordsOffset(h)), { keys: resolveTrustedKeys([keys.publicKey]), securityCounter });
}

describe('firmware releases', () => {
  it('a security counter defaults to the highest of the older versions and never decreases with the version', async () => {
    const s = await store();
    expect(s.addFirmware('a1Store', '1.0.0', testBytes(100, 1))).toMatchObject({ securityCounter: 0, allowDowngrade: false });
    expect(s.addFirmware('a1Store', '1.1.0', testBytes(100, 2), { securityCounter: 3 })).toMatchObject({ securityCounter: 3 });
    expect(s.addFirmware('a1Store', '1.2.0', testBytes(100, 3))).toMatchObject({ securityCounter: 3 });
    expect(() => s.addFirmware('a1Store', '1.3.0', testBytes(100, 4), { securityCounter: 2 })).toThrow(/security counter 2 of 1\.3\.0 is below the 3 of the older 1\.(1|2)\.0/);
    expect(() => s.addFirmware('a1Store', '1.0.5', testBytes(100, 5), { securityCounter: 4 })).toThrow(/above the 3 of the newer 1\.1\.0/);
    // The owner's deliberate exception.
    expect(s.addFirmware('a1Store', '1.3.0', testBytes(100, 4), { securityCounter: 1, allowDowngrade: true })).toMatchObject({ securityCounter: 1, allowDowngrade: true });
    expect(s.firmwareRelease('a1Store', '1.1')).toEqual({ version: '1.1.0', securityCounter: 3, allowDowngrade: false });
    expect(() => s.addFirmware('a1Store', '2.0.0', testBytes(100, 6), { securityCounter: 2 ** 32 })).toThrow(/security counter must be an integer/);
  });

  it('a version must fit the signed header: at most 32 printable ASCII characters', async () => {
    const s = await store();
    const long = `1.0.0-${'a'.repeat(27)}`; // 33 characters, a valid version otherwise
    expect(() => s.addFirmware('a1Store', long, testBytes(10, 1))).toThrow(CloudStoreError);
    expect(() => s.addFirmware('a1Store', long, testBytes(10, 1))).toThrow(/at most 32 printable ASCII characters/);
    expect(s.addFirmware('a1Store', long.slice(0, 32), testBytes(10, 1)).size).toBe(10);
  });

  it('a store from before releases reads counter 0', async () => {
    const s = await store();
    s.addFirmware('a1Store', '1.0.0', testBytes(100, 1), { securityCounter: 7 });
    await rm(join(dir, 'data', 'files', 'fw', 'a1Store', '1.0.0.json'));
    expect(s.firmwareRelease('a1Store', '1.0.0')).toEqual({ version: '1.0.0', securityCounter: 0, allowDowngrade: false });
  });
});

describe('packages the store makes', () => {
  it('diffs are signed with the store key and carry the target release', async () => {
    const s = await store({ signingKey: keys.privateKey });
    s.addFirmware('a1Store', '1.0.0', pair.old);
    s.addFirmware('a1Store', '2.0.0', pair.neu, { securityCounter: 4 });
    const pkg = (await s.diffPackage('a1Store', '1.0.0', '2.0'))!;
    expect(pkg.header).toMatchObject({ mode: 'inplace', firmwareVersion: '2.0.0', securityCounter: 4, allowDowngrade: false, signatureType: SignatureType.ed25519 });
    trusted(pkg.bytes, pkg.header!, 4);
    expect(() => trusted(pkg.bytes, pkg.header!, 5)).toThrow(/security counter 4 is below the 5/);
    // Cached: the same file again.
    expect((await s.diffPackage('a1Store', '1.0.0', '2.0.0'))!.path).toBe(pkg.path);
  });

  it('full images are raw (OTA_RAW) packages; the cache follows a change of key', async () => {
    const signedStore = await store({ signingKey: keys.privateKey }, 'full');
    signedStore.addFirmware('a1Store', '2.0.0', pair.neu, { securityCounter: 2 });
    expect(await signedStore.diffPackage('a1Store', '1.0.0', '2.0.0')).toBeUndefined();
    const raw = (await signedStore.rawPackage('a1Store', '2.0.0'))!;
    expect(raw.header).toMatchObject({ mode: 'raw', oldSize: 0, newSize: pair.neu.length, firmwareVersion: '2.0.0', securityCounter: 2, signatureType: SignatureType.ed25519 });
    trusted(raw.bytes, raw.header!);
    expect(Buffer.compare(raw.bytes.subarray(recordsOffset(raw.header!)), pair.neu)).toBe(0);
    const unsignedStore = await store();
    const plain = (await unsignedStore.rawPackage('a1Store', '2.0.0'))!;
    expect(plain.path).not.toBe(raw.path);
    expect(plain.header).toMatchObject({ signatureType: SignatureType.none, securityCounter: 2 });
    expect(() => trusted(plain.bytes, plain.header!)).toThrow(/not signed/);
    expect(existsSync(join(dir, 'data', 'files', raw.path))).toBe(true);
    expect(await unsignedStore.rawPackage('a1Store', '9.9.9')).toBeUndefined();
  });
});

describe('trusted keys', () => {
  it('reads PEM text (several keys in one), PEM files and DER; names what it cannot read', async () => {
    dir = await mkdtemp(join(tmpdir(), 'ota-keys-'));
    const other = packageKeys('ecdsa-p256');
    await writeFile(join(dir, 'both.pub'), keys.publicKey + other.publicKey);
    const der = new Uint8Array(createPublicKey(other.publicKey).export({ type: 'spki', format: 'der' }));
    const got = resolveTrustedKeys(['both.pub', keys.publicKey, der], dir);
    expect(got.map((k) => k.algorithm)).toEqual(['ed25519', 'ecdsaP256', 'ed25519', 'ecdsaP256']);
    expect(() => resolveTrustedKeys(['nope.pub'], dir)).toThrow(TrustedKeyError);
    expect(() => resolveTrustedKeys(['-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----'])).toThrow(/no "BEGIN PUBLIC KEY" block/);
  });

  it('the device config names keys relative to itself', () => {
    const cfg = parseDeviceConfig(JSON.stringify({ productKey: 'a1Cfg', deviceName: 'dev-0001', deviceSecret: 's3cret', trustedKeys: ['keys/fw.pub', '/abs/fw.pub', keys.publicKey] }), '/etc/otadiff');
    expect(cfg.trustedKeys).toEqual(['/etc/otadiff/keys/fw.pub', '/abs/fw.pub', keys.publicKey]);
    expect(() => parseDeviceConfig(JSON.stringify({ productKey: 'a1Cfg', deviceName: 'dev-0001', deviceSecret: 's3cret', trustedKeys: [] }))).toThrow(DeviceConfigError);
    expect(() => parseDeviceConfig(JSON.stringify({ productKey: 'a1Cfg', deviceName: 'dev-0001', deviceSecret: 's3cret', trustedKeys: 'fw.pub' }))).toThrow(/trustedKeys must be a list/);
  });
});
