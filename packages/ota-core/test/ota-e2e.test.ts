import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { openNetworkHandles, recordNetworkBaseline } from './helpers/handles.js';
import { DN, firmwarePair, PK, same, startRig, type Rig } from './helpers/ota-rig.js';

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
      const st = rig.cloud.status().devices.find((d) => d.deviceName === DN)!;
      expect(st.version).toBe('2.0.0');
      expect(st.job).toMatchObject({ state: 'succeeded', isDiff: true, fromVersion: '1.0.0' });
      // The header came by a ranged request, the rest resumed right after it.
      const reqs = rig.cloud.files.requests;
      expect(reqs.map((r) => r.range)).toEqual(['bytes=0-127', 'bytes=128-']);
      const sent = reqs.reduce((n, r) => n + r.bodyBytes, 0);
      expect(sent).toBe(st.job!.packageBytes);
      expect(sent).toBeLessThan(pair.neu.length / 4);
    } finally {
      await rig.close();
    }
  });
});
