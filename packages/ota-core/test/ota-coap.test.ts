import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openNetworkHandles, recordNetworkBaseline } from './helpers/handles.js';
import { startUdpProxy } from './helpers/udp-proxy.js';
import { CoapChannel, coapDownload } from '../src/device/coap-download.js';
import { buildInformMessage, buildProgressMessage } from '../src/protocol/messages.js';
import { deriveMqttCredentials } from '../src/protocol/mqtt-auth.js';
import { connectOtaDeviceCoap } from '../src/device/coap-link.js';
import { createCoapNoticeServer } from '../src/cloud/coap-notices.js';
import type { OtaPort } from '../src/device/flash-port.js';
import { createOtaService } from '../src/device/ota-service.js';
import { startCoapFileServer } from '../src/cloud/coap-file-server.js';
import { buildUpgradeMessage, type UpgradeInfo } from '../src/protocol/messages.js';
import { DN, firmwarePair, PK, same, SPLIT, startRig } from './helpers/ota-rig.js';

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
      // The notice always repeats the header's split size, even one larger than the package.
      expect((first as { info: { size: number } }).info.size).toBeLessThan(SPLIT);
      expect(first).toMatchObject({ isDiff: true, info: { splitSize: SPLIT, url: expect.stringMatching(new RegExp(`^coap://127\\.0\\.0\\.1:${proxy.port}/pkg/[0-9a-f]{24}/`)) } });
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
      const st = (await rig.cloud.status()).devices.find((d) => d.deviceName === DN)!;
      expect(st.job).toMatchObject({ state: 'succeeded', isDiff: true });
      // The first notice's capability path is no longer served.
      const url = new URL((first as { info: { url: string } }).info.url);
      url.port = String(rig.cloud.coap.port);
      const gone = await coapDownload({ url: url.href, sink: async () => {}, hash: 'sha256', expectedSize: 10, expectedDigest: '0'.repeat(64), ackTimeoutMs: 200 }).catch((e: unknown) => e);
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
      expect((await rig.cloud.store.jobs())[0].downloadProtocol).toBeUndefined();
    } finally {
      await rig.close();
    }
  });

  it('a job for CoAP downloads is stored with its protocol; an unknown protocol is refused', async () => {
    const rig = await startRig({ ...pair });
    try {
      const j = await rig.cloud.createJob({ productKey: PK, version: '2.0.0', downloadProtocol: 'coap' });
      expect((await rig.cloud.store.jobs()).find((x) => x.id === j.id)?.downloadProtocol).toBe('coap');
      await expect(rig.cloud.createJob({ productKey: PK, version: '2.0.0', downloadProtocol: 'ftp' as 'coap' })).rejects.toThrow(/unknown download protocol/);
    } finally {
      await rig.close();
    }
  });
});

describe('notices over CoAP (transport: coap)', () => {
  it('a device signs in over CoAP, informs, polls its notice, downloads over CoAP and reports progress: it is updated', async () => {
    const rig = await startRig({ ...pair, coapNotices: true, cloud: { downloadProtocol: 'coap' }, service: { downloadProtocol: 'coap', download: { ackTimeoutMs: 200 } } });
    const cloudEvents: string[] = [];
    rig.cloud.on((e) => cloudEvents.push(e.type));
    try {
      await rig.svc.start();
      expect(rig.events.find((e) => e.type === 'connected')).toMatchObject({ broker: rig.cloud.coap.url });
      const done = rig.cloud.waitFor((e) => e.type === 'succeeded', 20_000);
      await rig.cloud.createJob({ productKey: PK, version: '2.0.0' });
      await done;
      expect(rig.svc.running).toEqual({ slot: 'A', version: '2.0.0' });
      expect(same(rig.slotBytes('A', pair.neu.length), pair.neu)).toBe(true);
      // The cloud heard the informs and the progress over CoAP: no device ever connected to the broker.
      expect(cloudEvents.filter((t) => t === 'inform').length).toBe(2);
      expect(cloudEvents).toContain('progress');
      expect(rig.events.filter((e) => e.type === 'notice')).toHaveLength(1);
      expect(rig.cloud.broker!.aedes.connectedClients).toBe(1); // the cloud's own
      expect((await rig.cloud.status()).devices[0].job).toMatchObject({ state: 'succeeded', isDiff: true });
    } finally {
      await rig.close();
    }
  });

  it('notices and download both over a lossy CoAP path', async () => {
    const proxy = await startUdpProxy(0);
    const rig = await startRig({
      ...pair,
      coapNotices: true,
      cloud: { downloadProtocol: 'coap', publicCoapPort: proxy.port },
      service: { broker: `coap://127.0.0.1:${proxy.port}`, downloadProtocol: 'coap', download: { ackTimeoutMs: 30, retries: 20, backoff: { initialMs: 2, maxMs: 10 } } },
    });
    try {
      proxy.retarget(rig.cloud.coap.port);
      proxy.state.drop = (dir, n) => n % 6 === (dir === 'up' ? 2 : 4);
      await rig.svc.start();
      const done = rig.cloud.waitFor((e) => e.type === 'succeeded', 20_000);
      await rig.cloud.createJob({ productKey: PK, version: '2.0.0' });
      await done;
      expect(same(rig.slotBytes('A', pair.neu.length), pair.neu)).toBe(true);
      expect(proxy.state.dropped).toBeGreaterThan(0);
      // Retransmitted requests were answered from the server's duplicate cache: one notice acted on.
      expect(rig.events.filter((e) => e.type === 'notice')).toHaveLength(1);
    } finally {
      await rig.close();
      await proxy.close();
    }
  });

  it('HTTP downloads with CoAP notices', async () => {
    const rig = await startRig({ ...pair, coapNotices: true });
    try {
      await rig.svc.start();
      const done = rig.cloud.waitFor((e) => e.type === 'succeeded', 20_000);
      await rig.cloud.createJob({ productKey: PK, version: '2.0.0' });
      await done;
      expect(same(rig.slotBytes('A', pair.neu.length), pair.neu)).toBe(true);
      expect(rig.cloud.files.requests.length).toBeGreaterThan(0);
    } finally {
      await rig.close();
    }
  });

  it('a wrong secret is refused at sign-in; a token opens only its own device paths', async () => {
    const rig = await startRig({ ...pair, coapNotices: true, service: { deviceSecret: 'x'.repeat(32) } });
    const other = await rig.cloud.store.addDevice(PK, 'rig-device-02');
    const seen: string[] = [];
    rig.cloud.on((e) => (e.type === 'inform' || e.type === 'progress' ? seen.push(`${e.type} ${e.device.deviceName}`) : undefined));
    const ch = new CoapChannel('127.0.0.1', rig.cloud.coap.port);
    await ch.open('127.0.0.1');
    const t = { ackTimeoutMs: 200, maxRetransmit: 3, responseTimeoutMs: 1000, random: () => 0 };
    const post = (path: string, body: string, query: string[] = []) =>
      ch.request({ code: 'POST', path: path.split('/').filter(Boolean), query, payload: Buffer.from(body) }, t).then((x) => x.packet);
    try {
      await expect(rig.svc.start()).rejects.toMatchObject({ code: 'AUTH' });
      const inform = buildInformMessage({ id: '1', version: '1.0.0' });
      // No token, a made-up token: 4.01.
      expect((await post(`/ota/device/inform/${PK}/${DN}`, inform)).code).toBe('4.01');
      expect((await post(`/ota/device/inform/${PK}/${DN}`, inform, [`token=${'ab'.repeat(16)}`])).code).toBe('4.01');
      // The other device signs in properly...
      const c = deriveMqttCredentials({ productKey: PK, deviceName: 'rig-device-02', deviceSecret: other.deviceSecret });
      const signIn = JSON.stringify({ clientId: c.clientId, username: c.username, password: c.password });
      const auth = await post('/auth', signIn);
      expect(auth.code).toBe('2.05');
      // The same sign-in again (a replay) is refused; so is one whose timestamp is an hour old.
      expect((await post('/auth', signIn)).code).toBe('4.01');
      const stale = deriveMqttCredentials({ productKey: PK, deviceName: 'rig-device-02', deviceSecret: other.deviceSecret }, { timestamp: Date.now() - 3_600_000 });
      expect((await post('/auth', JSON.stringify({ clientId: stale.clientId, username: stale.username, password: stale.password }))).code).toBe('4.01');
      const token = (JSON.parse(auth.payload.toString()) as { token: string }).token;
      // ...and may use its own paths, not DN's.
      expect((await post(`/ota/device/inform/${PK}/rig-device-02`, inform, [`token=${token}`])).code).toBe('2.04');
      expect((await post(`/ota/device/inform/${PK}/${DN}`, inform, [`token=${token}`])).code).toBe('4.03');
      expect((await post(`/ota/device/progress/${PK}/${DN}`, buildProgressMessage({ id: '2', step: 50, desc: 'x' }), [`token=${token}`])).code).toBe('4.03');
      const poll = await ch.request({ code: 'GET', path: ['ota', 'device', 'upgrade', PK, DN], query: [`token=${token}`] }, t);
      expect(poll.packet.code).toBe('4.03');
      // A malformed inform on its own path: 4.00.
      expect((await post(`/ota/device/inform/${PK}/rig-device-02`, '{"id":"1"}', [`token=${token}`])).code).toBe('4.00');
      await new Promise((r) => setTimeout(r, 20));
      expect(seen).toEqual(['inform rig-device-02']);
    } finally {
      await ch.close();
      await rig.close();
    }
  });

  it('a closed link stops polling and leaves no socket or timer behind', async () => {
    const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const rig = await startRig({ ...pair });
    const dev = (await rig.cloud.store.device(PK, DN))!;
    try {
      const udp = (): number => process.getActiveResourcesInfo().filter((r) => r === 'UDPWrap').length;
      const udpBefore = udp();
      const link = await connectOtaDeviceCoap(rig.cloud.coap.url, { productKey: PK, deviceName: DN, deviceSecret: dev.deviceSecret }, { pollMs: 5 });
      await new Promise((r) => setTimeout(r, 60));
      await link.close();
      await new Promise((r) => setTimeout(r, 20)); // a datagram sent before close may still be on its way
      const polls = (): number => rig.cloud.coap.requests.length;
      const n = polls();
      await new Promise((r) => setTimeout(r, 60));
      expect(n).toBeGreaterThan(3);
      expect(polls()).toBe(n);
      expect(udp()).toBe(udpBefore);
    } finally {
      await rig.close();
    }
    // The cloud's CoAP server (its message cache) and the link keep no timer either.
    await new Promise((r) => setTimeout(r, 10));
    expect(timers()).toBeLessThanOrEqual(before);
  });

  it('a notice larger than one CoAP block arrives whole (Block2), once per notice id', async () => {
    const secret = 'k'.repeat(32);
    const informs: string[] = [];
    const notices = createCoapNoticeServer({
      registry: { getDeviceSecret: (pk, dn) => (pk === PK && dn === DN ? secret : undefined) },
      onInform: (_d, m) => void informs.push(m.version),
      onProgress: () => {},
    });
    const server = await startCoapFileServer({ onRequest: (req, res) => notices.handle(req, res) });
    const info: UpgradeInfo = {
      id: '77',
      size: 1000,
      version: '2.0.0',
      url: 'coap://127.0.0.1:5683/pkg/x',
      signMethod: 'SHA256',
      sign: 'a'.repeat(64),
      isDiff: 0,
      extData: { note: 'n'.repeat(2500) },
    };
    const got: UpgradeInfo[] = [];
    const link = await connectOtaDeviceCoap(server.url, { productKey: PK, deviceName: DN, deviceSecret: secret }, { pollMs: 5, ackTimeoutMs: 200, upgradeParse: { allowedProtocols: ['coap:'] } });
    try {
      link.onUpgrade((i) => got.push(i));
      await link.reportVersion('1.0.0');
      expect(informs).toEqual(['1.0.0']);
      notices.setNotice({ productKey: PK, deviceName: DN }, buildUpgradeMessage(info, { allowedProtocols: ['coap:'] }));
      for (let i = 0; i < 100 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 40)); // more polls: the same id is delivered once
      expect(got).toHaveLength(1);
      expect(got[0]).toEqual(info);
      expect(server.requests.filter((r) => r.block !== undefined && r.block.num > 0).length).toBeGreaterThan(0);
    } finally {
      await link.close();
      await server.close();
    }
  });

  it('an expired session token makes the device sign in again, once, transparently', async () => {
    const secret = 'k'.repeat(32);
    let clock = Date.now();
    const informs: string[] = [];
    let auths = 0;
    const notices = createCoapNoticeServer({
      registry: { getDeviceSecret: (pk, dn) => (pk === PK && dn === DN ? secret : undefined) },
      tokenTtlMs: 1000,
      now: () => clock,
      onAuth: () => void auths++,
      onInform: (_d, m) => void informs.push(m.version),
      onProgress: () => {},
    });
    const server = await startCoapFileServer({ onRequest: (req, res) => notices.handle(req, res) });
    const link = await connectOtaDeviceCoap(server.url, { productKey: PK, deviceName: DN, deviceSecret: secret }, { pollMs: 60_000, ackTimeoutMs: 200 });
    try {
      await link.reportVersion('1.0.0');
      clock += 1001;
      await link.reportVersion('1.0.1');
      expect(informs).toEqual(['1.0.0', '1.0.1']);
      expect(auths).toBe(2);
      const informPosts = server.requests.filter((r) => r.path.startsWith('/ota/device/inform/'));
      expect(informPosts).toHaveLength(3); // the refused one, then the retry
    } finally {
      await link.close();
      await server.close();
    }
  });

  it('transport and broker must agree', () => {
    const base = { productKey: PK, deviceName: DN, deviceSecret: 's'.repeat(32), port: {} as OtaPort };
    expect(createOtaService({ ...base, transport: 'coap' }).broker).toBe('coap://127.0.0.1:5683');
    expect(() => createOtaService({ ...base, transport: 'coap', broker: 'mqtt://127.0.0.1:1883' })).toThrow(expect.objectContaining({ code: 'CONFIG' }));
    expect(() => createOtaService({ ...base, broker: 'coap://127.0.0.1:5683' })).toThrow(expect.objectContaining({ code: 'CONFIG' }));
    expect(() => createOtaService({ ...base, transport: 'udp' as 'coap' })).toThrow(/unknown transport/);
  });
});
