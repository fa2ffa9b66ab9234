// Signed packages through the OTA service: the device trusts a public key and refuses, before
// set_boot, anything unsigned, signed by another key, tampered with, below its recorded security
// counter (unless the signed header allows it), or not what the notice announces.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packRaw } from '@otadiff/diff-gen';
import { openNetworkHandles, recordNetworkBaseline } from './helpers/handles.js';
import { DN, firmwarePair, packageKeys, PK, same, startRig, type Rig, type RigOptions } from './helpers/ota-rig.js';
import { testBytes } from './helpers/http.js';
import type { OtaCloudClient } from '../src/cloud/mqtt-client.js';
import { deviceState, handover, testCloud, untilIdle } from './helpers/refusal.js';
import { buildUpgradeMessage, OtaStep, type UpgradeInfo } from '../src/protocol/messages.js';
import { upgradeTopic } from '../src/protocol/topics.js';
import { fileDigest } from '../src/protocol/signature.js';
import { HEAD_FETCH_BYTES } from '../src/device/package-head.js';
import { startCoapFileServer } from '../src/cloud/coap-file-server.js';
import { createOtaService } from '../src/device/ota-service.js';
import { OtaServiceError } from '../src/device/service-types.js';

beforeAll(recordNetworkBaseline);
afterAll(async () => {
  expect(await openNetworkHandles()).toEqual([]);
});

const pair = firmwarePair(96 * 1024, 41);
const v3 = firmwarePair(96 * 1024, 43).neu;
const owner = packageKeys('ed25519');
const stranger = packageKeys('ed25519');

/** A rig whose cloud signs with `owner` (unless told otherwise) and whose device trusts `owner`. */
function signedRig(o: Partial<RigOptions> = {}): Promise<Rig> {
  return startRig({ ...pair, packageSigningKey: owner.privateKey, trustedKeys: [owner.publicKey], ...o });
}

let noticeId = 100;

/** Serves `bytes` from the cloud's file server and returns a notice for it. */
function serve(rig: Rig, name: string, bytes: Uint8Array, over: Partial<UpgradeInfo> = {}): UpgradeInfo {
  const dir = join(rig.dir, 'cloud', 'files', 'extra');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, name), bytes);
  return {
    id: String(++noticeId),
    size: bytes.length,
    version: '3.0.0',
    url: rig.cloud.files.signUrl(`/extra/${name}`, Date.now() + 60_000),
    signMethod: 'SHA256',
    sign: fileDigest(bytes, 'SHA256'),
    isDiff: 0,
    ...over,
  };
}

async function updateToV2(rig: Rig): Promise<void> {
  await rig.svc.start();
  const done = rig.cloud.waitFor((e) => e.type === 'succeeded', 20_000);
  await rig.cloud.createJob({ productKey: PK, version: '2.0.0' });
  await done;
}

/** Pushes a notice; resolves with the service's failure (step and error). */
async function refusal(rig: Rig, cloud: OtaCloudClient, info: UpgradeInfo): Promise<{ step: number; message: string }> {
  const failed = rig.svc.waitFor((e) => e.type === 'failed', 10_000);
  await cloud.pushUpgrade({ productKey: PK, deviceName: DN }, info);
  const f = await failed;
  if (f.type !== 'failed') throw new Error('unreachable');
  // The service reports the failure after the event: let it finish before the next notice.
  await untilIdle(rig);
  return { step: f.step, message: f.error.message };
}

async function installs(rig: Rig, cloud: OtaCloudClient, info: UpgradeInfo): Promise<void> {
  const done = rig.svc.waitFor((e) => (e.type === 'inform' && e.version === info.version) || e.type === 'failed' || e.type === 'update-failed', 10_000);
  await cloud.pushUpgrade({ productKey: PK, deviceName: DN }, info);
  const e = await done;
  if (e.type === 'failed') throw new Error(`the update failed: ${e.error.message}`);
  if (e.type === 'update-failed') throw new Error(`the bootloader refused the update: ${e.detail}`);
}

describe('signed packages: what a device that trusts a key installs', () => {
  it('a signed diff updates end to end; confirming it records its security counter', async () => {
    const rig = await signedRig({ counters: { old: 0, neu: 2 } });
    try {
      expect(await rig.port.securityCounter()).toBe(0);
      await updateToV2(rig);
      expect(same(rig.slotBytes('A', pair.neu.length), pair.neu)).toBe(true);
      expect(rig.events.find((e) => e.type === 'header')).toMatchObject({ signature: 'ed25519', header: { mode: 'inplace', firmwareVersion: '2.0.0', securityCounter: 2 } });
      expect(rig.events.find((e) => e.type === 'verified')).toMatchObject({ signature: 'ed25519', securityCounter: 2 });
      expect(await rig.port.securityCounter()).toBe(2);
      expect(handover(rig)).toMatchObject({ confirmed: true, securityCounter: 2 });
    } finally {
      await rig.close();
    }
  });

  it('a signed raw (OTA_RAW) package updates an A/B device end to end (ECDSA P-256)', async () => {
    const ec = packageKeys('ecdsa-p256');
    const rig = await signedRig({ mode: 'full', deviceAb: true, packageSigningKey: ec.privateKey, trustedKeys: [ec.publicKey], counters: { neu: 1 } });
    try {
      await updateToV2(rig);
      expect(rig.svc.running).toEqual({ slot: 'B', version: '2.0.0' });
      expect(same(rig.slotBytes('B', pair.neu.length), pair.neu)).toBe(true);
      expect(rig.events.find((e) => e.type === 'header')).toMatchObject({ signature: 'ecdsaP256', header: { mode: 'raw', firmwareVersion: '2.0.0' } });
      expect(rig.events.find((e) => e.type === 'set-boot')).toMatchObject({ firmwareType: 'raw', slot: 'B' });
      expect(await rig.port.securityCounter()).toBe(1);
    } finally {
      await rig.close();
    }
  });

  it('an unsigned package is refused (-3) after its head: nothing downloaded, erased or handed over', async () => {
    const rig = await signedRig({ packageSigningKey: undefined });
    try {
      await rig.svc.start();
      const failed = rig.cloud.waitFor((e) => e.type === 'failed', 10_000);
      await rig.cloud.createJob({ productKey: PK, version: '2.0.0' });
      const f = await failed;
      expect(f).toMatchObject({ step: OtaStep.VERIFY_FAILED, desc: expect.stringMatching(/refused: the package is not signed/) });
      expect(rig.cloud.files.requests.map((r) => r.bodyBytes)).toEqual([HEAD_FETCH_BYTES]);
      expect(handover(rig)).toBeNull();
      expect((await deviceState(rig)).download).toBeUndefined();
      expect(rig.svc.running).toEqual({ slot: 'A', version: '1.0.0' });
      expect(same(rig.slotBytes('A', pair.old.length), pair.old)).toBe(true);
      // The OTA partition was never touched (the head is written only once it passed).
      expect((await rig.port.read(0, 4096)).every((b) => b === 0xff)).toBe(true);
    } finally {
      await rig.close();
    }
  });

  it('a package signed by another key is refused (-3)', async () => {
    const rig = await signedRig({ mode: 'full', packageSigningKey: stranger.privateKey });
    try {
      await rig.svc.start();
      const failed = rig.cloud.waitFor((e) => e.type === 'failed', 10_000);
      await rig.cloud.createJob({ productKey: PK, version: '2.0.0' });
      expect(await failed).toMatchObject({ step: OtaStep.VERIFY_FAILED, desc: expect.stringMatching(/ed25519 signature does not verify with any trusted key/) });
      expect(handover(rig)).toBeNull();
      expect(rig.svc.running).toEqual({ slot: 'A', version: '1.0.0' });
    } finally {
      await rig.close();
    }
  });

  it('a tampered payload under a valid header signature is refused before set_boot (payload SHA-256)', async () => {
    const rig = await signedRig();
    const cloud = await testCloud(rig);
    try {
      await rig.svc.start();
      const pkg = packRaw(v3, { splitSize: 16 * 1024, firmwareVersion: '3.0.0', signingKey: owner.privateKey }).package;
      const bad = pkg.slice();
      bad[bad.length - 5000] ^= 0x40; // in the records: the signed head is intact
      // The notice's digest is the tampered file's: only the signed payload SHA-256 can tell.
      const r = await refusal(rig, cloud, serve(rig, 'tampered.otad', bad));
      expect(r).toEqual({ step: OtaStep.VERIFY_FAILED, message: 'refused: the records in flash do not match the payload SHA-256 of the signed header' });
      expect(rig.events.some((e) => e.type === 'downloaded')).toBe(true);
      expect(rig.events.some((e) => e.type === 'set-boot')).toBe(false);
      expect(handover(rig)).toBeNull();
      expect((await deviceState(rig)).download).toBeUndefined(); // starts over next time
      expect(rig.svc.running).toEqual({ slot: 'A', version: '1.0.0' });
      expect(same(rig.slotBytes('A', pair.old.length), pair.old)).toBe(true);
      // The same package untampered installs.
      await installs(rig, cloud, serve(rig, 'good.otad', pkg));
      expect(same(rig.slotBytes('A', v3.length), v3)).toBe(true);
    } finally {
      await cloud.close();
      await rig.close();
    }
  });

  it('a notice whose version disagrees with the signed header is refused (-1)', async () => {
    const rig = await signedRig();
    const cloud = await testCloud(rig);
    try {
      await updateToV2(rig);
      // "3.0.0" says the notice; the package is 1.0.0's, signed by the owner (same counter 0).
      const v1 = (await rig.cloud.store.rawPackage(PK, '1.0.0'))!;
      const r = await refusal(rig, cloud, serve(rig, 'v1.otad', v1.bytes, { version: '3.0.0' }));
      expect(r).toEqual({ step: OtaStep.UPGRADE_FAILED, message: 'refused: the notice announces version 3.0.0, the signed package is version 1.0.0' });
      expect(rig.cloud.files.requests.at(-1)).toMatchObject({ bodyBytes: HEAD_FETCH_BYTES });
      // A notice that calls a raw package a diff is refused too.
      const raw3 = packRaw(v3, { splitSize: 16 * 1024, firmwareVersion: '3.0.0', signingKey: owner.privateKey }).package;
      const r2 = await refusal(rig, cloud, serve(rig, 'v3.otad', raw3, { isDiff: 1 }));
      expect(r2).toEqual({ step: OtaStep.UPGRADE_FAILED, message: 'refused: the notice announces a diff, the package is a full image (raw)' });
      expect(rig.svc.running).toEqual({ slot: 'A', version: '2.0.0' });
      expect(same(rig.slotBytes('A', pair.neu.length), pair.neu)).toBe(true);
    } finally {
      await cloud.close();
      await rig.close();
    }
  });
});

describe('anti-rollback: the recorded security counter', () => {
  it('a package below the recorded counter is refused (-1) unless its signed header allows the downgrade', async () => {
    const rig = await signedRig({ counters: { neu: 5 } });
    const cloud = await testCloud(rig);
    try {
      await updateToV2(rig);
      expect(await rig.port.securityCounter()).toBe(5);
      const low = packRaw(v3, { splitSize: 16 * 1024, firmwareVersion: '3.0.0', securityCounter: 4, signingKey: owner.privateKey }).package;
      const r = await refusal(rig, cloud, serve(rig, 'low.otad', low));
      expect(r).toEqual({ step: OtaStep.UPGRADE_FAILED, message: "refused: the package's security counter 4 is below the 5 this device has recorded (rollback refused)" });
      expect(rig.cloud.files.requests.at(-1)).toMatchObject({ bodyBytes: HEAD_FETCH_BYTES });
      expect(handover(rig)).toMatchObject({ confirmed: true, activeSlot: 'A', securityCounter: 5 });
      // The owner's signed permission: the same release with allow-downgrade installs.
      const allowed = packRaw(v3, { splitSize: 16 * 1024, firmwareVersion: '3.0.0', securityCounter: 4, allowDowngrade: true, signingKey: owner.privateKey }).package;
      await installs(rig, cloud, serve(rig, 'allowed.otad', allowed));
      expect(same(rig.slotBytes('A', v3.length), v3)).toBe(true);
      expect(rig.svc.running).toEqual({ slot: 'A', version: '3.0.0' });
      expect(await rig.port.securityCounter()).toBe(5); // never lowered
    } finally {
      await cloud.close();
      await rig.close();
    }
  });

  it('after the new image is confirmed, a replay of an older signed package is refused', async () => {
    const rig = await signedRig({ counters: { neu: 2 } });
    const cloud = await testCloud(rig);
    try {
      // An older release the owner signed (counter 1, no version in its header: any notice may name it).
      const older = packRaw(v3, { splitSize: 16 * 1024, securityCounter: 1, signingKey: owner.privateKey }).package;
      await rig.svc.start();
      expect(await rig.port.securityCounter()).toBe(0); // it would still install here
      const done = rig.cloud.waitFor((e) => e.type === 'succeeded', 20_000);
      await rig.cloud.createJob({ productKey: PK, version: '2.0.0' });
      await done;
      expect(rig.events.find((e) => e.type === 'confirmed')).toMatchObject({ version: '2.0.0' });
      expect(await rig.port.securityCounter()).toBe(2);
      const r = await refusal(rig, cloud, serve(rig, 'replay.otad', older, { version: '9.9.9' }));
      expect(r).toEqual({ step: OtaStep.UPGRADE_FAILED, message: "refused: the package's security counter 1 is below the 2 this device has recorded (rollback refused)" });
      expect(handover(rig)).toMatchObject({ confirmed: true, securityCounter: 2 });
      expect(rig.svc.running).toEqual({ slot: 'A', version: '2.0.0' });
      // A reboot does not forget it: the counter lives in the hand-over record.
      await rig.svc.stop();
      await rig.svc.start();
      const again = await refusal(rig, cloud, serve(rig, 'replay2.otad', older, { version: '9.9.9' }));
      expect(again.message).toMatch(/security counter 1 is below the 2/);
    } finally {
      await cloud.close();
      await rig.close();
    }
  });

  it('an older version goes back only with a signed allow-downgrade package', async () => {
    const rig = await signedRig();
    const cloud = await testCloud(rig);
    try {
      await updateToV2(rig);
      const back = (allowDowngrade: boolean) => packRaw(pair.old, { splitSize: 16 * 1024, firmwareVersion: '1.0.0', allowDowngrade, signingKey: owner.privateKey }).package;
      const r = await refusal(rig, cloud, serve(rig, 'back.otad', back(false), { version: '1.0.0' }));
      expect(r).toEqual({ step: OtaStep.UPGRADE_FAILED, message: 'refused: version 1.0.0 is not newer than the running 2.0.0, and the signed package does not allow a downgrade' });
      await installs(rig, cloud, serve(rig, 'back-ok.otad', back(true), { version: '1.0.0' }));
      expect(rig.svc.running).toEqual({ slot: 'A', version: '1.0.0' });
      expect(same(rig.slotBytes('A', pair.old.length), pair.old)).toBe(true);
    } finally {
      await cloud.close();
      await rig.close();
    }
  });
});

describe('the signed head on the wire and on the boot side', () => {
  // RSA-2048 (256-byte signature) and 38 chunks of 4 KiB: a head longer than the first fetch.
  const rsa = packageKeys('rsa-2048');
  const big = testBytes(150 * 1024, 44);
  const pkg = packRaw(big, { splitSize: 4096, firmwareVersion: '3.0.0', signingKey: rsa.privateKey }).package;
  const headBytes = 176 + 38 * 16 + 4 + 256;

  it('HTTP: a head longer than the first fetch is completed by a second ranged request', async () => {
    const rig = await signedRig({ trustedKeys: [rsa.publicKey], cloud: { fileServer: {} } });
    const cloud = await testCloud(rig);
    try {
      await rig.svc.start();
      const notice = serve(rig, 'rsa.otad', pkg);
      await installs(rig, cloud, notice);
      const H = HEAD_FETCH_BYTES;
      expect(rig.cloud.files.requests.map((r) => r.range)).toEqual([`bytes=0-${H - 1}`, `bytes=${H}-${headBytes - 1}`, `bytes=${headBytes}-`]);
      expect(rig.events.find((e) => e.type === 'header')).toMatchObject({ signature: 'rsa2048', fetched: headBytes });
      expect(same(rig.slotBytes('A', big.length), big)).toBe(true);
    } finally {
      await cloud.close();
      await rig.close();
    }
  });

  it('CoAP: the head is gathered from as many blocks as it takes', async () => {
    const coap = await startCoapFileServer({ files: { '/pkg/rsa.otad': pkg } });
    const rig = await signedRig({ trustedKeys: [rsa.publicKey], service: { downloadProtocol: 'coap', download: { ackTimeoutMs: 100 } } });
    const cloud = await testCloud(rig);
    try {
      await rig.svc.start();
      const info: UpgradeInfo = { id: '5', size: pkg.length, version: '3.0.0', url: `coap://127.0.0.1:${coap.port}/pkg/rsa.otad`, signMethod: 'SHA256', sign: fileDigest(pkg, 'SHA256'), isDiff: 0 };
      const done = rig.svc.waitFor((e) => e.type === 'inform' && e.version === '3.0.0', 10_000);
      await cloud.mqtt.publishAsync(upgradeTopic(PK, DN), buildUpgradeMessage(info, { allowedProtocols: ['coap:'] }), { qos: 1 });
      await done;
      expect(rig.events.find((e) => e.type === 'header')).toMatchObject({ signature: 'rsa2048', fetched: 2048 });
      expect(same(rig.slotBytes('A', big.length), big)).toBe(true);
    } finally {
      await cloud.close();
      await rig.close();
      await coap.close();
    }
  });

  it('a package shorter than the first fetch comes whole with its head', async () => {
    const rig = await signedRig();
    const cloud = await testCloud(rig);
    try {
      await rig.svc.start();
      const tiny = testBytes(300, 45);
      const pkg = packRaw(tiny, { splitSize: 4096, firmwareVersion: '3.0.0', signingKey: owner.privateKey }).package;
      expect(pkg.length).toBeLessThan(HEAD_FETCH_BYTES);
      await installs(rig, cloud, serve(rig, 'tiny.otad', pkg));
      expect(rig.cloud.files.requests.map((r) => [r.range, r.bodyBytes])).toEqual([[`bytes=0-${pkg.length - 1}`, pkg.length]]);
      expect(same(rig.slotBytes('A', tiny.length), tiny)).toBe(true);
    } finally {
      await cloud.close();
      await rig.close();
    }
  });

  it('a service without keys hands an unsigned package over; a bootloader with keys still refuses it', async () => {
    const rig = await signedRig({ mode: 'full', packageSigningKey: undefined, service: { trustedKeys: undefined } });
    try {
      await rig.svc.start();
      const failed = rig.cloud.waitFor((e) => e.type === 'failed', 20_000);
      await rig.cloud.createJob({ productKey: PK, version: '2.0.0' });
      const f = await failed;
      expect(f).toMatchObject({ step: OtaStep.BURN_FAILED, desc: expect.stringMatching(/the bootloader refused the update \(signature\)/) });
      expect(rig.events.find((e) => e.type === 'update-failed')).toMatchObject({ reason: 'signature' });
      expect(rig.svc.running).toEqual({ slot: 'A', version: '1.0.0' });
      expect(same(rig.slotBytes('A', pair.old.length), pair.old)).toBe(true);
    } finally {
      await rig.close();
    }
  });

  it('trusted keys that do not parse are a configuration error', async () => {
    const rig = await startRig({ ...pair });
    try {
      const base = { productKey: PK, deviceName: DN, deviceSecret: rig.deviceSecret, broker: rig.cloud.brokerUrl, port: rig.port };
      expect(() => createOtaService({ ...base, trustedKeys: ['-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----'] })).toThrow(OtaServiceError);
      expect(() => createOtaService({ ...base, trustedKeys: [join(rig.dir, 'missing.pub')] })).toThrow(/cannot read the public key .*no such file/);
      expect(() => createOtaService({ ...base, trustedKeys: [] })).toThrow(/trustedKeys is empty/);
      expect(() => createOtaService({ ...base, trustedKeys: [owner.publicKey + stranger.publicKey] })).not.toThrow();
    } finally {
      await rig.close();
    }
  });
});
