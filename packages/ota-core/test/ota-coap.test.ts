import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openNetworkHandles, recordNetworkBaseline } from './helpers/handles.js';
import { startUdpProxy } from './helpers/udp-proxy.js';
import { coapDownload } from '../src/coap-transfer.js';
import { DN, firmwarePair, PK, same, startRig } from './helpers/ota-rig.js';

beforeAll(recordNetworkBaseline);
afterAll(async () => {
  expect(await openNetworkHandles()).toEqual([]);
});

const pair = firmwarePair(96 * 1024);
const BLOCK = 256;

describe('the cloud serves packages over CoAP', () => {
  it('a CoAP device updates by diff through the cloud: lost datagrams, a stop mid-download, a resume at the block where it stopped', async () => {
    // A lossy relay in front of the cloud's CoAP server; the cloud hands out its port.
    const proxy = await startUdpProxy(0);
    const rig = await startRig({
      ...pair,
      cloud: { publicCoapPort: proxy.port },
      service: { downloadProtocol: 'coap', download: { coapBlockSize: BLOCK, ackTimeoutMs: 30, retries: 20, backoff: { initialMs: 2, maxMs: 10 } } },
    });
    try {
      proxy.retarget(rig.cloud.coap.port);
      proxy.state.drop = (dir, n) => n % 7 === (dir === 'up' ? 3 : 5);
      await rig.svc.start();
      // The job asks for CoAP; the cloud's default stays HTTP.
      const pushed = rig.cloud.waitFor((e) => e.type === 'pushed', 10_000);
      const midway = rig.svc.waitFor((e) => e.type === 'download' && e.offset >= 8 * BLOCK, 20_000);
      await rig.cloud.createJob({ productKey: PK, version: '2.0.0', downloadProtocol: 'coap' });
      const first = await pushed;
      expect(first).toMatchObject({ isDiff: true, info: { url: expect.stringMatching(new RegExp(`^coap://127\\.0\\.0\\.1:${proxy.port}/pkg/[0-9a-f]{24}/`)) } });
      await midway;
      await rig.svc.stop();
      const stoppedAt = rig.events.filter((e) => e.type === 'download').at(-1) as { offset: number };
      expect(stoppedAt.offset % BLOCK).toBe(0);
      const before = rig.cloud.coap.requests.length;

      // Power on again: the inform makes the cloud push again, the download resumes.
      const done = rig.cloud.waitFor((e) => e.type === 'succeeded', 20_000);
      await rig.svc.start();
      await done;
      expect(rig.svc.running).toEqual({ slot: 'A', version: '2.0.0' });
      expect(same(rig.slotBytes('A', pair.neu.length), pair.neu)).toBe(true);
      expect(rig.events.filter((e) => e.type === 'download-start').at(-1)).toMatchObject({ offset: stoppedAt.offset, resumed: true });
      // The second transfer starts at the block where the first stopped, no block 0 again.
      const again = rig.cloud.coap.requests.slice(before);
      expect(again[0].block).toMatchObject({ num: stoppedAt.offset / BLOCK, size: BLOCK });
      expect(again.every((r) => (r.block?.num ?? 0) >= stoppedAt.offset / BLOCK)).toBe(true);
      expect(new Set(again.map((r) => r.path)).size).toBe(1);
      expect(again[0].path).not.toBe(rig.cloud.coap.requests[0].path); // a fresh capability path per notice
      expect(proxy.state.dropped).toBeGreaterThan(0);
      // Nothing went over HTTP.
      expect(rig.cloud.files.requests).toEqual([]);
      const st = rig.cloud.status().devices.find((d) => d.deviceName === DN)!;
      expect(st.job).toMatchObject({ state: 'succeeded', isDiff: true });
      // The first notice's capability path is no longer served.
      const url = new URL((first as { info: { url: string } }).info.url);
      url.port = String(rig.cloud.coap.port);
      const gone = await coapDownload({ url: url.href, sink: () => {}, hash: 'sha256', expectedSize: 10, expectedDigest: '0'.repeat(64), ackTimeoutMs: 200 }).catch((e: unknown) => e);
      expect(gone).toMatchObject({ code: 'COAP_STATUS', message: expect.stringMatching(/4\.04/) });
    } finally {
      await rig.close();
      await proxy.close();
    }
  });

  it('the cloud option downloadProtocol: coap applies to every job', async () => {
    const rig = await startRig({ ...pair, mode: 'full', cloud: { downloadProtocol: 'coap' }, service: { downloadProtocol: 'coap', download: { ackTimeoutMs: 200 } } });
    try {
      await rig.svc.start();
      const done = rig.cloud.waitFor((e) => e.type === 'succeeded', 20_000);
      const pushed = rig.cloud.waitFor((e) => e.type === 'pushed', 10_000);
      await rig.cloud.createJob({ productKey: PK, version: '2.0.0' });
      const p = (await pushed) as { info: { url: string } };
      await done;
      expect(p.info.url.startsWith(rig.cloud.coap.url)).toBe(true);
      expect(same(rig.slotBytes('A', pair.neu.length), pair.neu)).toBe(true);
      expect(rig.cloud.files.requests).toEqual([]);
      expect(rig.cloud.store.jobs()[0].downloadProtocol).toBeUndefined();
    } finally {
      await rig.close();
    }
  });

  it('a job for CoAP downloads is stored with its protocol; an unknown protocol is refused', async () => {
    const rig = await startRig({ ...pair });
    try {
      const j = await rig.cloud.createJob({ productKey: PK, version: '2.0.0', downloadProtocol: 'coap' });
      await rig.cloud.store.reload();
      expect(rig.cloud.store.jobs().find((x) => x.id === j.id)?.downloadProtocol).toBe('coap');
      await expect(rig.cloud.createJob({ productKey: PK, version: '2.0.0', downloadProtocol: 'ftp' as 'coap' })).rejects.toThrow(/unknown download protocol/);
    } finally {
      await rig.close();
    }
  });
});
