import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { connectAsync } from 'mqtt';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { openPartition } from '@otadiff/patch-apply';
import { openNetworkHandles, recordNetworkBaseline } from './helpers/handles.js';
import { DN, firmwarePair, PK, same, startRig } from './helpers/ota-rig.js';
import { testBytes } from './helpers/http.js';
import { deviceState, expectFailure, fullImageNotice, handover, testCloud } from './helpers/refusal.js';
import { deriveMqttCredentials } from '../src/protocol/mqtt-auth.js';
import { OtaStep, type UpgradeInfo } from '../src/protocol/messages.js';
import { fileDigest } from '../src/protocol/signature.js';
import { progressTopic, upgradeTopic } from '../src/protocol/topics.js';
import { createOtaService } from '../src/device/ota-service.js';
import { OtaServiceError } from '../src/device/service-types.js';
import { HEAD_FETCH_BYTES } from '../src/device/package-head.js';
import { startOtaCloud } from '../src/cloud/cloud.js';
import { join } from 'node:path';

beforeAll(recordNetworkBaseline);
afterAll(async () => {
  expect(await openNetworkHandles()).toEqual([]);
});

const pair = firmwarePair(96 * 1024);

describe('the device refuses what it must not install', () => {
  it('a wrong hash fails verification (-3) and never reaches the bootloader', async () => {
    const rig = await startRig({ ...pair, mode: 'full', deviceAb: false });
    const cloud = await testCloud(rig);
    try {
      await rig.svc.start();
      const notice = await fullImageNotice(rig, { sign: fileDigest(testBytes(10), 'SHA256') });
      const error = await expectFailure(rig, () => cloud.pushUpgrade({ productKey: PK, deviceName: DN }, notice), OtaStep.VERIFY_FAILED);
      expect(error?.message).toMatch(/sha256 .* != expected/);
      expect(handover(rig)).toBeNull();
      expect((await deviceState(rig)).download).toBeUndefined(); // a failed digest restarts from 0 next time
      expect(rig.svc.running).toEqual({ slot: 'A', version: '1.0.0' });
      expect(same(rig.slotBytes('A', pair.old.length), pair.old)).toBe(true);
    } finally {
      await cloud.close();
      await rig.close();
    }
  });

  it('a wrong RSA digestsign fails verification (-3) and never reaches the bootloader', async () => {
    const signer = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const rig = await startRig({ ...pair, signingKey: signer.privateKey, service: { publicKey: other.publicKey } });
    try {
      await rig.svc.start();
      const cloudFailed = rig.cloud.waitFor((e) => e.type === 'failed', 10_000);
      const error = await expectFailure(rig, async () => void (await rig.cloud.createJob({ productKey: PK, version: '2.0.0' })), OtaStep.VERIFY_FAILED);
      expect(error?.name).toBe('SignatureError');
      expect(await cloudFailed).toMatchObject({ step: OtaStep.VERIFY_FAILED });
      expect((await rig.cloud.status()).devices[0].job).toMatchObject({ state: 'failed', step: OtaStep.VERIFY_FAILED });
      expect(handover(rig)).toBeNull();
      // The failed job is not pushed again when the device reboots and informs 1.0.0.
      await rig.svc.stop();
      await rig.svc.start();
      await new Promise((r) => setTimeout(r, 200));
      expect(rig.events.filter((e) => e.type === 'notice')).toHaveLength(1);
    } finally {
      await rig.close();
    }
  });

  it('a downgrade (or the same version) is refused (-1) without downloading anything', async () => {
    const rig = await startRig({ ...pair });
    const cloud = await testCloud(rig);
    try {
      await rig.svc.start();
      const dev = { productKey: PK, deviceName: DN };
      const old = await fullImageNotice(rig, {}, '1.0.0');
      let error = await expectFailure(rig, () => cloud.pushUpgrade(dev, { ...old, version: '0.9.12' }), OtaStep.UPGRADE_FAILED);
      expect(error?.message).toMatch(/0\.9\.12 is not newer than the running 1\.0\.0/);
      error = await expectFailure(rig, () => cloud.pushUpgrade(dev, { ...old, version: '1.0' }), OtaStep.UPGRADE_FAILED);
      expect(error?.message).toMatch(/not newer/);
      expect(rig.cloud.files.requests).toHaveLength(0);
      expect(handover(rig)).toBeNull();
    } finally {
      await cloud.close();
      await rig.close();
    }
  });

  it('a diff made for another image is refused after its signed head (-1)', async () => {
    const rig = await startRig({ ...pair });
    const cloud = await testCloud(rig);
    try {
      // Make the cloud's diff from 1.0.0 -> 2.0.0, then give the device another old image.
      const pkg = (await rig.cloud.store.diffPackage(PK, '1.0.0', '2.0.0'))!;
      await rig.svc.start();
      const info: UpgradeInfo = {
        id: '7',
        size: pkg.size,
        version: '2.0.0',
        url: rig.cloud.files.signUrl(pkg.path, Date.now() + 60_000),
        signMethod: 'SHA256',
        sign: fileDigest(pkg.bytes, 'SHA256'),
        isDiff: 1,
      };
      // Corrupt the device's slot A (as if it ran something else): the header check must refuse.
      const state = await deviceState(rig);
      const slotA = openPartition(rig.port.flash, rig.port.layout, 'appA');
      slotA.erase(0);
      slotA.program(0, testBytes(4096, 3));
      const error = await expectFailure(rig, () => cloud.pushUpgrade({ productKey: PK, deviceName: DN }, info), OtaStep.UPGRADE_FAILED);
      expect(error?.message).toMatch(/diff was made for an image with SHA-256/);
      expect(rig.cloud.files.requests.map((r) => [r.range, r.bodyBytes])).toEqual([[`bytes=0-${HEAD_FETCH_BYTES - 1}`, HEAD_FETCH_BYTES]]);
      expect(handover(rig)).toBeNull();
      expect((await deviceState(rig)).slots).toEqual(state.slots);
    } finally {
      await cloud.close();
      await rig.close();
    }
  });
});

describe('a server that changes the file under a download', () => {
  it('restarts from byte 0 into a cleared partition when the ETag changes', async () => {
    const rig = await startRig({ ...pair, mode: 'full', deviceAb: false });
    const cloud = await testCloud(rig);
    const notice = await fullImageNotice(rig);
    const real = (await rig.cloud.store.rawPackage(PK, '2.0.0'))!.bytes;
    // Representation "a": the right signed head, wrong bytes after it; it serves the head, then a
    // download cut after 3000 bytes. Then the file becomes "b" (the right one): If-Range fails.
    const a = real.slice();
    a.set(testBytes(a.length - HEAD_FETCH_BYTES, 77), HEAD_FETCH_BYTES);
    let n = 0;
    const seen: Array<string | undefined> = [];
    const server = createServer((req, res) => {
      seen.push(req.headers.range);
      const k = n++;
      if (k < 2) {
        const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '')!;
        const start = Number(m[1]);
        const end = m[2] === '' ? a.length - 1 : Number(m[2]);
        res.writeHead(206, { ETag: '"a"', 'Content-Range': `bytes ${start}-${end}/${a.length}`, 'Content-Length': end - start + 1 });
        if (k === 0) res.end(a.subarray(start, end + 1));
        else res.write(a.subarray(start, start + 3000), () => res.socket?.destroy());
        return;
      }
      res.writeHead(200, { ETag: '"b"', 'Content-Length': real.length });
      res.end(real);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      await rig.svc.start();
      const done = rig.svc.waitFor((e) => e.type === 'inform' && e.version === '2.0.0', 10_000);
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/fw.bin`;
      await cloud.pushUpgrade({ productKey: PK, deviceName: DN }, { ...notice, url });
      await done;
      const H = HEAD_FETCH_BYTES;
      expect(seen).toEqual([`bytes=0-${H - 1}`, `bytes=${H}-`, `bytes=${H + 3000}-`]);
      expect(same(rig.slotBytes('A', pair.neu.length), pair.neu)).toBe(true);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await cloud.close();
      await rig.close();
    }
  });
});

describe('sign-in and topic isolation', () => {
  it('a bad device secret is refused at CONNECT', async () => {
    const rig = await startRig({ ...pair });
    try {
      const svc = createOtaService({ productKey: PK, deviceName: DN, deviceSecret: 'not-the-secret-123', broker: rig.cloud.brokerUrl, port: rig.port, reconnect: false });
      const err = await svc.start().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OtaServiceError);
      expect((err as OtaServiceError).code).toBe('AUTH');
      expect(svc.status).toBe('off');
    } finally {
      await rig.close();
    }
  });

  it('an HMAC-SHA1 sign-in is refused by default and accepted when the cloud allows it', async () => {
    const strict = await startRig({ ...pair, service: { signMethod: 'hmacsha1' } });
    try {
      const err = await strict.svc.start().catch((e: unknown) => e);
      expect((err as OtaServiceError).code).toBe('AUTH');
    } finally {
      await strict.close();
    }
    const lenient = await startRig({ ...pair, service: { signMethod: 'hmacsha1' }, cloud: { allowedSignMethods: ['hmacsha256', 'hmacsha1'] } });
    try {
      const informed = lenient.cloud.waitFor((e) => e.type === 'inform', 10_000);
      await lenient.svc.start();
      expect(await informed).toMatchObject({ version: '1.0.0' });
    } finally {
      await lenient.close();
    }
  });

  it("a device can neither receive another device's notices nor report for it", async () => {
    const rig = await startRig({ ...pair });
    const intruder = await rig.cloud.store.addDevice(PK, 'rig-device-02');
    const creds = deriveMqttCredentials(intruder);
    const mallory = await connectAsync(rig.cloud.brokerUrl, { ...creds, reconnectPeriod: 0 });
    try {
      const seen: string[] = [];
      mallory.on('message', (t) => seen.push(t));
      // The broker answers SUBACK 0x80 (failure), which mqtt.js turns into a rejection.
      await expect(mallory.subscribeAsync(upgradeTopic(PK, DN), { qos: 1 })).rejects.toThrow(/Subscribe error/);
      await expect(mallory.subscribeAsync('/ota/device/upgrade/+/+', { qos: 1 })).rejects.toThrow(/Subscribe error/);
      // A forged failure for the victim never reaches the cloud.
      const cloudProgress: string[] = [];
      rig.cloud.on((e) => e.type === 'progress' && cloudProgress.push(e.desc));
      await mallory.publishAsync(progressTopic(PK, DN), JSON.stringify({ id: '1', params: { step: '-1', desc: 'forged' } }), { qos: 0 });
      // The victim updates normally.
      await rig.svc.start();
      const done = rig.cloud.waitFor((e) => e.type === 'succeeded', 20_000);
      await rig.cloud.createJob({ productKey: PK, version: '2.0.0', devices: [DN] });
      await done;
      expect(seen).toEqual([]);
      expect(cloudProgress.length).toBeGreaterThan(0); // the victim's own reports arrive
      expect(cloudProgress).not.toContain('forged');
      expect((await rig.cloud.status()).devices.find((d) => d.deviceName === DN)?.job?.desc).not.toBe('forged');
    } finally {
      await mallory.endAsync(true);
      await rig.close();
    }
  });
});

describe('power cuts and rollback', () => {
  const big = firmwarePair(320 * 1024, 11);

  it('a power cut during the download resumes from the persisted checkpoint', async () => {
    const rig = await startRig({ ...big, mode: 'full', deviceAb: false, tear: 'random' });
    try {
      await rig.svc.start();
      rig.faulty.scheduleCut(2); // the third flash write of the download
      const cut = rig.svc.waitFor((e) => e.type === 'powercut', 20_000);
      await rig.cloud.createJob({ productKey: PK, version: '2.0.0' });
      await cut;
      expect(rig.svc.status).toBe('off');
      const cp = (await deviceState(rig)).download?.checkpoint;
      expect(cp?.offset).toBeGreaterThan(0);
      expect(cp!.offset).toBeLessThan(big.neu.length);
      // Power back: the device informs 1.0.0, the cloud re-sends the job, the download resumes.
      rig.faulty.reboot();
      const done = rig.cloud.waitFor((e) => e.type === 'succeeded', 20_000);
      await rig.svc.start();
      await done;
      expect(rig.events.filter((e) => e.type === 'download-start').at(-1)).toMatchObject({ offset: cp!.offset, resumed: true });
      const ranges = rig.cloud.files.requests.map((r) => r.range);
      expect(ranges).toEqual([`bytes=0-${HEAD_FETCH_BYTES - 1}`, `bytes=${HEAD_FETCH_BYTES}-`, `bytes=${cp!.offset}-`]);
      expect(same(rig.slotBytes('A', big.neu.length), big.neu)).toBe(true);
      expect(rig.svc.running).toEqual({ slot: 'A', version: '2.0.0' });
    } finally {
      await rig.close();
    }
  });

  it('on program-once (ECC) flash with 16-byte units: a power cut during the download resumes from a whole-unit breakpoint, the in-place restore completes', async () => {
    const rig = await startRig({ ...pair, mode: 'inplace', tear: 'random', flash: { programUnit: 16, overwrite: 'program-once' } });
    try {
      await rig.svc.start();
      rig.faulty.scheduleCut(3);
      const cut = rig.svc.waitFor((e) => e.type === 'powercut', 20_000);
      await rig.cloud.createJob({ productKey: PK, version: '2.0.0' });
      await cut;
      const cp = (await deviceState(rig)).download?.checkpoint;
      // Only breakpoints the flash holds: a multiple of the unit (the partial unit was in RAM).
      expect(cp?.offset).toBeGreaterThan(0);
      expect(cp!.offset % 16).toBe(0);
      rig.faulty.reboot();
      const done = rig.cloud.waitFor((e) => e.type === 'succeeded', 30_000);
      await rig.svc.start();
      await done;
      expect(same(rig.slotBytes('A', pair.neu.length), pair.neu)).toBe(true);
      expect(rig.svc.running).toEqual({ slot: 'A', version: '2.0.0' });
      expect(rig.events.some((e) => e.type === 'failed')).toBe(false);
    } finally {
      await rig.close();
    }
  });

  for (const mode of ['inplace', 'ab'] as const) {
    it(`a power cut during the ${mode} restore: the next boot resumes it`, async () => {
      const rig = await startRig({ ...pair, mode, tear: 'bits' });
      try {
        await rig.svc.start();
        rig.svc.on((e) => {
          if (e.type === 'rebooting') rig.faulty.scheduleCut(9);
        });
        const cut = rig.svc.waitFor((e) => e.type === 'powercut', 20_000);
        await rig.cloud.createJob({ productKey: PK, version: '2.0.0' });
        await cut;
        expect(rig.faulty.lastCut).not.toBeNull();
        rig.faulty.reboot();
        const done = rig.cloud.waitFor((e) => e.type === 'succeeded', 20_000);
        await rig.svc.start();
        await done;
        const slot = mode === 'ab' ? 'B' : 'A';
        expect(rig.svc.running).toEqual({ slot, version: '2.0.0' });
        expect(same(rig.slotBytes(slot, pair.neu.length), pair.neu)).toBe(true);
        expect(rig.events.filter((e) => e.type === 'set-boot')).toHaveLength(1);
      } finally {
        await rig.close();
      }
    });
  }

  it('an A/B image never confirmed rolls back to the old one after 3 boots', async () => {
    const rig = await startRig({ ...pair, mode: 'ab', service: { healthCheck: ({ version }) => version !== '2.0.0' } });
    try {
      await rig.svc.start();
      const failed = rig.cloud.waitFor((e) => e.type === 'failed', 20_000);
      await rig.cloud.createJob({ productKey: PK, version: '2.0.0' });
      const f = await failed;
      expect(f).toMatchObject({ step: OtaStep.UPGRADE_FAILED });
      expect(f.type === 'failed' && f.desc).toMatch(/rolled back/);
      const boots = rig.events.filter((e) => e.type === 'boot').map((e) => (e.type === 'boot' ? e.outcome : null));
      expect(boots.map((o) => o?.kind)).toEqual(['normal', 'trial', 'trial', 'trial', 'old']);
      expect(rig.events.filter((e) => e.type === 'unhealthy').map((e) => (e.type === 'unhealthy' ? e.attempt : 0))).toEqual([1, 2, 3]);
      expect(rig.events.some((e) => e.type === 'confirmed')).toBe(false);
      expect(rig.svc.running).toEqual({ slot: 'A', version: '1.0.0' });
      expect(same(rig.slotBytes('A', pair.old.length), pair.old)).toBe(true);
      expect(handover(rig)).toMatchObject({ activeSlot: 'A', confirmed: true });
      // Slot B still holds the image that failed; the state knows it.
      expect((await deviceState(rig)).slots.B?.version).toBe('2.0.0');
    } finally {
      await rig.close();
    }
  });
});

describe('a cloud that is down when the device reboots into its update', () => {
  it('the device keeps trying and reports its new version when the cloud is back', async () => {
    const free = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const { port } = s.address() as AddressInfo;
        s.close(() => resolve(port));
      });
    });
    const rig = await startRig({ ...pair, cloud: { mqttPort: free }, service: { reconnect: true } });
    let again: Awaited<ReturnType<typeof startOtaCloud>> | undefined;
    try {
      await rig.svc.start();
      // The cloud goes away as the device reboots into the restore, and comes back a moment later.
      const down = new Promise<void>((resolve) => {
        rig.svc.on((e) => {
          if (e.type === 'rebooting') void rig.cloud.close().then(resolve);
        });
      });
      await rig.cloud.createJob({ productKey: PK, version: '2.0.0' });
      await down;
      await new Promise((r) => setTimeout(r, 300));
      again = await startOtaCloud({ dataDir: join(rig.dir, 'cloud'), pollMs: 0, mqttPort: free });
      const done = again.waitFor((e) => e.type === 'succeeded', 20_000);
      expect(await done).toMatchObject({ device: { deviceName: DN } });
      expect(rig.svc.running).toMatchObject({ version: '2.0.0' });
      expect(rig.events.some((e) => e.type === 'disconnected')).toBe(true);
    } finally {
      await again?.close();
      await rig.close();
    }
  });
});
