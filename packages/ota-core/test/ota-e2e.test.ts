import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { openNetworkHandles, recordNetworkBaseline } from './helpers/handles.js';
import { startUdpProxy } from './helpers/udp-proxy.js';
import { DN, firmwarePair, PK, same, startRig, type Rig } from './helpers/ota-rig.js';
import { HEAD_FETCH_BYTES } from '../src/device/package-head.js';
import { startCoapFileServer } from '../src/cloud/coap-file-server.js';
import { connectOtaCloud } from '../src/cloud/mqtt-client.js';
import { buildUpgradeMessage, type UpgradeInfo } from '../src/protocol/messages.js';
import { fileDigest } from '../src/protocol/signature.js';
import { upgradeTopic } from '../src/protocol/topics.js';

beforeAll(recordNetworkBaseline);
afterAll(async () => {
  expect(await openNetworkHandles()).toEqual([]);
});

const pair = firmwarePair(96 * 1024);

async function updateToV2(rig: Rig): Promise<void> {
  await rig.svc.start();
  expect(rig.svc.running).toEqual({ slot: 'A', version: '1.0.0' });
  const done = rig.cloud.waitFor((e) => e.type === 'succeeded', 20_000);
  await rig.cloud.createJob({ productKey: PK, version: '2.0.0' });
  await done;
}

describe('OTA service end to end (embedded broker, loopback)', () => {
  it('in place diff: header first, download, verify, restore, confirm, inform', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const rig = await startRig({ ...pair, mode: 'inplace', signingKey: privateKey, service: { publicKey } });
    try {
      await updateToV2(rig);
      expect(same(rig.slotBytes('A', pair.neu.length), pair.neu)).toBe(true);
      expect(rig.svc.running).toEqual({ slot: 'A', version: '2.0.0' });
      const types = rig.events.map((e) => e.type);
      expect(types.indexOf('header')).toBeGreaterThan(-1);
      expect(types.indexOf('header')).toBeLessThan(types.indexOf('download-start'));
      expect(rig.events.find((e) => e.type === 'verified')).toMatchObject({ digestsign: true });
      expect(rig.events.find((e) => e.type === 'set-boot')).toMatchObject({ firmwareType: 'diff', slot: 'A', version: '2.0.0' });
      expect(rig.events.find((e) => e.type === 'boot' && e.outcome.kind === 'trial')).toBeDefined();
      expect(rig.events.find((e) => e.type === 'confirmed')).toMatchObject({ slot: 'A', version: '2.0.0' });
      const st = (await rig.cloud.status()).devices.find((d) => d.deviceName === DN)!;
      expect(st.version).toBe('2.0.0');
      expect(st.job).toMatchObject({ state: 'succeeded', isDiff: true, fromVersion: '1.0.0' });
      // The signed head came by a ranged request, the rest resumed right after it.
      const reqs = rig.cloud.files.requests;
      expect(reqs.map((r) => r.range)).toEqual([`bytes=0-${HEAD_FETCH_BYTES - 1}`, `bytes=${HEAD_FETCH_BYTES}-`]);
      const sent = reqs.reduce((n, r) => n + r.bodyBytes, 0);
      expect(sent).toBe(st.job!.packageBytes);
      expect(sent).toBeLessThan(pair.neu.length / 4);
      // The notice's URL was the device's, for that job, and 15 minutes at most; with the job done it
      // fetches nothing more (a leaked URL is not a bearer token for the rest of its life).
      const url = new URL(rig.events.find((e) => e.type === 'notice')!.info.url);
      expect(url.searchParams.get('device')).toBe(`${PK}/${DN}`);
      expect(url.searchParams.get('job')).toBe(st.job!.id);
      expect(Number(url.searchParams.get('expires')) * 1000 - Date.now()).toBeLessThanOrEqual(15 * 60_000);
      const again = await fetch(url);
      expect(again.status).toBe(403);
      expect(await again.text()).toMatch(/job is over/);
    } finally {
      await rig.close();
    }
  });

  it('A/B diff: the new image goes to slot B, the old one stays in A', async () => {
    const rig = await startRig({ ...pair, mode: 'ab' });
    try {
      await updateToV2(rig);
      expect(rig.svc.running).toEqual({ slot: 'B', version: '2.0.0' });
      expect(same(rig.slotBytes('B', pair.neu.length), pair.neu)).toBe(true);
      expect(same(rig.slotBytes('A', pair.old.length), pair.old)).toBe(true);
      expect(rig.events.find((e) => e.type === 'set-boot')).toMatchObject({ firmwareType: 'diff', slot: 'B' });
      // A second reboot stays on B (confirmed), version from the device state.
      await rig.svc.stop();
      await rig.svc.start();
      expect(rig.events.filter((e) => e.type === 'boot').at(-1)).toMatchObject({ outcome: { kind: 'normal', slot: 'B' } });
      expect(rig.svc.running).toEqual({ slot: 'B', version: '2.0.0' });
    } finally {
      await rig.close();
    }
  });

  it('OTA_RAW: a product shipping full images updates in place (a raw package)', async () => {
    const rig = await startRig({ ...pair, mode: 'full', deviceAb: false });
    try {
      await updateToV2(rig);
      expect(same(rig.slotBytes('A', pair.neu.length), pair.neu)).toBe(true);
      // The full image comes behind the same header as a diff: checked before the download.
      expect(rig.events.find((e) => e.type === 'header')).toMatchObject({ header: { mode: 'raw', newSize: pair.neu.length, firmwareVersion: '2.0.0' }, signature: null });
      expect(rig.events.find((e) => e.type === 'set-boot')).toMatchObject({ firmwareType: 'raw', slot: 'A' });
      const st = (await rig.cloud.status()).devices[0];
      const raw = (await rig.cloud.store.rawPackage(PK, '2.0.0'))!;
      expect(raw.header).toMatchObject({ mode: 'raw', signatureType: 0 });
      expect(st.job).toMatchObject({ state: 'succeeded', isDiff: false, packageBytes: raw.size });
    } finally {
      await rig.close();
    }
  });

  it('OTA_RAW into the other slot of an A/B device', async () => {
    const rig = await startRig({ ...pair, mode: 'full', deviceAb: true });
    try {
      await updateToV2(rig);
      expect(rig.svc.running).toEqual({ slot: 'B', version: '2.0.0' });
      expect(same(rig.slotBytes('B', pair.neu.length), pair.neu)).toBe(true);
    } finally {
      await rig.close();
    }
  });

  it('connections dropped mid-download resume with Range; no byte is sent twice', async () => {
    const rig = await startRig({ ...pair, cloud: { fileServer: { dropAfterBytes: 1500, dropTimes: 3 } } });
    try {
      await updateToV2(rig);
      expect(same(rig.slotBytes('A', pair.neu.length), pair.neu)).toBe(true);
      const reqs = rig.cloud.files.requests;
      // The signed head's request fits in the budget; the download is cut twice.
      const H = HEAD_FETCH_BYTES;
      expect(reqs.map((r) => r.range)).toEqual([`bytes=0-${H - 1}`, `bytes=${H}-`, `bytes=${H + 1500}-`, `bytes=${H + 3000}-`]);
      expect(reqs.slice(2).every((r) => r.ifRange !== undefined)).toBe(true);
      expect(reqs.reduce((n, r) => n + r.bodyBytes, 0)).toBe((await rig.cloud.status()).devices[0].job!.packageBytes);
    } finally {
      await rig.close();
    }
  });

  it('a server that ignores Range: the header is cut from a 200, resumes skip what is already in flash', async () => {
    const rig = await startRig({ ...pair, cloud: { fileServer: { ignoreRange: true, dropAfterBytes: 4000, dropTimes: 2 } } });
    try {
      await updateToV2(rig);
      expect(same(rig.slotBytes('A', pair.neu.length), pair.neu)).toBe(true);
      expect(rig.events.find((e) => e.type === 'header')).toMatchObject({ rangeHonoured: false, fetched: HEAD_FETCH_BYTES });
      const reqs = rig.cloud.files.requests;
      expect(reqs.length).toBeGreaterThanOrEqual(3);
      expect(reqs.every((r) => r.status === 200)).toBe(true);
    } finally {
      await rig.close();
    }
  });

  it('CoAP download (Block2) with lost datagrams', async () => {
    const rig = await startRig({ ...pair, service: { downloadProtocol: 'coap', download: { ackTimeoutMs: 40, backoff: { initialMs: 5 } } } });
    const pkg = (await rig.cloud.store.diffPackage(PK, '1.0.0', '2.0.0'))!;
    const coap = await startCoapFileServer({ files: { '/fw/pkg.otad': pkg.bytes } });
    const proxy = await startUdpProxy(coap.port);
    // Every 5th datagram towards the server is lost: the client retransmits.
    proxy.state.drop = (dir, n) => dir === 'up' && n % 5 === 3;
    const cloud = await connectOtaCloud(rig.cloud.brokerUrl, rig.cloud.store.serviceCredential, { clientId: 'test-coap-cloud' });
    try {
      await rig.svc.start();
      const info: UpgradeInfo = {
        id: '1',
        size: pkg.size,
        version: '2.0.0',
        url: `coap://127.0.0.1:${proxy.port}/fw/pkg.otad`,
        signMethod: 'SHA256',
        sign: fileDigest(pkg.bytes, 'SHA256'),
        isDiff: 1,
      };
      const done = rig.svc.waitFor((e) => e.type === 'inform' && e.version === '2.0.0', 20_000);
      await cloud.mqtt.publishAsync(upgradeTopic(PK, DN), buildUpgradeMessage(info, { allowedProtocols: ['coap:'] }), { qos: 1 });
      await done;
      expect(same(rig.slotBytes('A', pair.neu.length), pair.neu)).toBe(true);
      expect(rig.events.find((e) => e.type === 'header')).toMatchObject({ fetched: 1024 });
      expect(proxy.state.dropped).toBeGreaterThan(0);
    } finally {
      await cloud.close();
      await proxy.close();
      await coap.close();
      await rig.close();
    }
  });

  it('a device on a version the store lacks gets the full image', async () => {
    const rig = await startRig({ ...pair, mode: 'inplace', deviceVersion: '0.9.0' });
    try {
      await rig.svc.start();
      const done = rig.cloud.waitFor((e) => e.type === 'succeeded', 20_000);
      await rig.cloud.createJob({ productKey: PK, version: '2.0.0' });
      await done;
      const raw = (await rig.cloud.store.rawPackage(PK, '2.0.0'))!;
      expect((await rig.cloud.status()).devices[0].job).toMatchObject({ isDiff: false, fromVersion: '0.9.0', packageBytes: raw.size });
      expect(same(rig.slotBytes('A', pair.neu.length), pair.neu)).toBe(true);
    } finally {
      await rig.close();
    }
  });

  it('an A/B package offered to a single-slot device is refused after its header', async () => {
    const rig = await startRig({ ...pair, mode: 'ab', deviceAb: false });
    try {
      await rig.svc.start();
      const failed = rig.cloud.waitFor((e) => e.type === 'failed', 20_000);
      await rig.cloud.createJob({ productKey: PK, version: '2.0.0' });
      expect(await failed).toMatchObject({ step: -1, desc: expect.stringMatching(/A\/B package needs a second slot/) });
      expect(rig.cloud.files.requests.map((r) => r.bodyBytes)).toEqual([HEAD_FETCH_BYTES]);
      expect(rig.svc.running).toEqual({ slot: 'A', version: '1.0.0' });
    } finally {
      await rig.close();
    }
  });
});
