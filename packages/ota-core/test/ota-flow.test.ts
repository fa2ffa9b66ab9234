import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import {
  compareVersions,
  connectOtaCloud,
  connectOtaDevice,
  createDigestSign,
  DeviceRegistry,
  download,
  fileDigest,
  hashAlgorithmOf,
  OtaStep,
  startBroker,
  startFileServer,
  verifyPackage,
  type ProgressMessage,
  type UpgradeInfo,
} from '../src/index.js';
import { openNetworkHandles, recordNetworkBaseline } from './helpers/handles.js';
import { recordingSink, testBytes } from './helpers/http.js';

beforeAll(recordNetworkBaseline);
afterAll(async () => {
  expect(await openNetworkHandles()).toEqual([]);
});

describe('end to end through the public API', () => {
  it('inform -> signed upgrade notice -> resumable download -> verify -> progress', async () => {
    const PK = 'a1Flow00001';
    const service = { username: 'cloud', password: 'cloud-service-secret' };
    const registry = DeviceRegistry.inMemory();
    registry.addProduct(PK);
    const dev = registry.addDevice(PK, 'meter-0042');
    const image = testBytes(200_000, 42);
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });

    const broker = await startBroker({ registry, service });
    const files = await startFileServer({ files: { '/fw/meter/2.0.0.bin': image }, secret: 'url-signing-key', dropAfterBytes: 64_000 });
    const cloud = await connectOtaCloud(broker.url, service);
    const device = await connectOtaDevice(broker.url, dev);
    try {
      const progress: ProgressMessage[] = [];
      const finished = new Promise<void>((resolve) =>
        cloud.onProgress((_d, m) => {
          progress.push(m);
          if (m.step === 100 || m.step < 0) resolve();
        }),
      );
      // Cloud: on a version report older than 2.0.0, push the signed package.
      cloud.onInform((d, m) => {
        if (compareVersions(m.version, '2.0.0') >= 0) return;
        const sign = fileDigest(image, 'SHA256');
        const info: UpgradeInfo = {
          id: String(Date.now()),
          size: image.length,
          version: '2.0.0',
          url: files.signUrl('/fw/meter/2.0.0.bin', Date.now() + 60_000),
          signMethod: 'SHA256',
          sign,
          isDiff: 0,
          digestsign: createDigestSign('SHA256', sign, privateKey),
        };
        void cloud.pushUpgrade(d, info);
      });
      // Device: download into "flash", verify, report.
      const rec = recordingSink(image.length);
      device.onUpgrade(async (info) => {
        try {
          let last = 0;
          const r = await download({
            url: info.url,
            sink: rec.sink,
            hash: hashAlgorithmOf(info.signMethod),
            expectedSize: info.size,
            expectedDigest: info.sign,
            sleep: async () => {},
            onCheckpoint: async (cp) => {
              const pct = Math.floor((cp.offset * 100) / cp.totalSize);
              if (pct >= last + 50 && pct < 100) await device.reportProgress((last = pct), 'downloading');
            },
          });
          verifyPackage(info, r.digest, r.size, { publicKey });
          await device.reportProgress(100, 'verified');
        } catch (e) {
          await device.reportProgress(OtaStep.VERIFY_FAILED, (e as Error).message.slice(0, 200));
        }
      });
      await device.reportVersion('1.9.3');
      await finished;
      expect(progress.at(-1)).toMatchObject({ step: 100, desc: 'verified' });
      expect(progress.some((p) => p.step >= 50 && p.step < 100)).toBe(true);
      expect(rec.overlaps).toBe(0);
      expect(Buffer.compare(Buffer.from(rec.image), Buffer.from(image))).toBe(0);
      expect(files.requests.length).toBe(2); // one cut, one resumed
      expect(files.requests[1].range).toBe('bytes=64000-');
    } finally {
      await device.close();
      await cloud.close();
      await files.close();
      await broker.close();
    }
  });
});
