import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openNetworkHandles, recordNetworkBaseline } from './helpers/handles.js';
import { firmwarePair, PK, same, startRig } from './helpers/ota-rig.js';
import { HEAD_FETCH_BYTES } from '../src/device/package-head.js';
import { OPENSSL, selfSigned } from './helpers/tls.js';
import { createServer as createNetServer, type AddressInfo } from 'node:net';

if (!OPENSSL) console.warn('ota-https.test: the openssl command is missing, the HTTPS tests are skipped');

beforeAll(recordNetworkBaseline);
afterAll(async () => {
  expect(await openNetworkHandles()).toEqual([]);
});

const pair = firmwarePair(64 * 1024);

describe.skipIf(!OPENSSL)('downloads over HTTPS (self-signed certificate, the device trusts it with `ca`)', () => {
  const server = OPENSSL ? selfSigned('otadiff-test-server') : { key: '', cert: '' };
  const stranger = OPENSSL ? selfSigned('otadiff-test-other') : { key: '', cert: '' };

  it('a device that trusts the certificate updates by diff over https', async () => {
    const rig = await startRig({ ...pair, cloud: { tls: server }, service: { downloadProtocol: 'https', download: { ca: server.cert, backoff: { initialMs: 5, maxMs: 50 } } } });
    try {
      expect(rig.cloud.files.url.startsWith('https://127.0.0.1:')).toBe(true);
      await rig.svc.start();
      const pushed = rig.cloud.waitFor((e) => e.type === 'pushed', 10_000);
      const done = rig.cloud.waitFor((e) => e.type === 'succeeded', 20_000);
      await rig.cloud.createJob({ productKey: PK, version: '2.0.0' });
      expect(await pushed).toMatchObject({ isDiff: true, info: { url: expect.stringMatching(/^https:\/\//) } });
      await done;
      expect(same(rig.slotBytes('A', pair.neu.length), pair.neu)).toBe(true);
      // Header first by a ranged request, then the rest: both over TLS.
      expect(rig.cloud.files.requests.map((r) => r.range)).toEqual([`bytes=0-${HEAD_FETCH_BYTES - 1}`, `bytes=${HEAD_FETCH_BYTES}-`]);
    } finally {
      await rig.close();
    }
  });

  it('notices over MQTT on TLS too (mqtts://, securemode=2), the embedded broker on the same key and certificate', async () => {
    const tlsPort = await new Promise<number>((resolve) => {
      const s = createNetServer().listen(0, '127.0.0.1', () => {
        const { port } = s.address() as AddressInfo;
        s.close(() => resolve(port));
      });
    });
    const rig = await startRig({
      ...pair,
      cloud: { tls: server, mqttTlsPort: tlsPort },
      service: { broker: `mqtts://127.0.0.1:${tlsPort}`, downloadProtocol: 'https', download: { ca: server.cert, backoff: { initialMs: 5, maxMs: 50 } } },
    });
    try {
      expect(rig.cloud.brokerTlsUrl).toBe(`mqtts://127.0.0.1:${tlsPort}`);
      await rig.svc.start();
      const done = rig.cloud.waitFor((e) => e.type === 'succeeded', 20_000);
      await rig.cloud.createJob({ productKey: PK, version: '2.0.0' });
      await done;
      expect(rig.svc.running).toEqual({ slot: 'A', version: '2.0.0' });
    } finally {
      await rig.close();
    }
  });

  it('a device that trusts another CA refuses the server and reports a download failure', async () => {
    const rig = await startRig({ ...pair, cloud: { tls: server }, service: { downloadProtocol: 'https', download: { ca: stranger.cert, retries: 1, backoff: { initialMs: 1, maxMs: 2 } } } });
    try {
      await rig.svc.start();
      const failed = rig.cloud.waitFor((e) => e.type === 'failed', 20_000);
      await rig.cloud.createJob({ productKey: PK, version: '2.0.0' });
      const f = (await failed) as { step: number; desc: string };
      expect(f.step).toBe(-2);
      expect(f.desc).toMatch(/certificate/i);
      // No request got through the handshake; the device still runs the old image.
      expect(rig.cloud.files.requests).toEqual([]);
      expect(rig.svc.running).toEqual({ slot: 'A', version: '1.0.0' });
    } finally {
      await rig.close();
    }
  });

  it('without `ca` the self-signed server is refused too (no silent trust)', async () => {
    const rig = await startRig({ ...pair, cloud: { tls: server }, service: { download: { retries: 0, backoff: { initialMs: 1, maxMs: 2 } } } });
    try {
      await rig.svc.start();
      const failed = rig.cloud.waitFor((e) => e.type === 'failed', 20_000);
      await rig.cloud.createJob({ productKey: PK, version: '2.0.0' });
      expect(await failed).toMatchObject({ step: -2, desc: expect.stringMatching(/certificate/i) });
      expect(rig.cloud.files.requests).toEqual([]);
    } finally {
      await rig.close();
    }
  });
});
