// The same service against a real, external broker (mosquitto). CI installs it
// (apt package `mosquitto`); without it these tests are skipped and say why.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { openNetworkHandles, recordNetworkBaseline } from './helpers/handles.js';
import { findMosquitto, startMosquitto, type Mosquitto } from './helpers/mosquitto.js';
import { firmwarePair, PK, same, startRig } from './helpers/ota-rig.js';

const bin = findMosquitto();
const pair = firmwarePair(96 * 1024, 21);
let broker: Mosquitto | undefined;
if (bin === undefined) console.warn('ota-mosquitto: SKIPPED: mosquitto is not installed (apt-get install mosquitto)');

beforeAll(async () => {
  recordNetworkBaseline();
  if (bin !== undefined) broker = await startMosquitto(bin);
});
afterAll(async () => {
  await broker?.close();
  expect(await openNetworkHandles()).toEqual([]);
});

const suffix = bin === undefined ? ' [skipped: mosquitto not installed]' : '';

describe('OTA service through an external mosquitto broker', () => {
  for (const mode of ['inplace', 'ab', 'full'] as const) {
    it.skipIf(bin === undefined)(`${mode} update end to end${suffix}`, async () => {
      const rig = await startRig({ ...pair, mode, cloud: { broker: broker!.url } });
      try {
        expect(rig.cloud.broker).toBeUndefined(); // no embedded broker
        await rig.svc.start();
        const done = rig.cloud.waitFor((e) => e.type === 'succeeded', 20_000);
        await rig.cloud.createJob({ productKey: PK, version: '2.0.0' });
        await done;
        const slot = mode === 'ab' ? 'B' : 'A';
        expect(rig.svc.running).toEqual({ slot, version: '2.0.0' });
        expect(same(rig.slotBytes(slot, pair.neu.length), pair.neu)).toBe(true);
        expect((await rig.cloud.status()).devices[0].job).toMatchObject({ state: 'succeeded', isDiff: mode !== 'full' });
      } finally {
        await rig.close();
      }
    });
  }

  it.skipIf(bin === undefined)(`a power cut during the download resumes through mosquitto${suffix}`, async () => {
    const big = firmwarePair(256 * 1024, 22);
    const rig = await startRig({ ...big, mode: 'full', cloud: { broker: broker!.url } });
    try {
      await rig.svc.start();
      rig.faulty.scheduleCut(1);
      const cut = rig.svc.waitFor((e) => e.type === 'powercut', 20_000);
      await rig.cloud.createJob({ productKey: PK, version: '2.0.0' });
      await cut;
      rig.faulty.reboot();
      const done = rig.cloud.waitFor((e) => e.type === 'succeeded', 20_000);
      await rig.svc.start();
      await done;
      expect(rig.events.filter((e) => e.type === 'download-start').at(-1)).toMatchObject({ resumed: true });
      expect(same(rig.slotBytes('A', big.neu.length), big.neu)).toBe(true);
    } finally {
      await rig.close();
    }
  });

  it.skipIf(bin === undefined)(`the cloud reconnects after a broker restart, says so, and serves devices again${suffix}`, async () => {
    // A broker of its own, restarted on the same port.
    let own = await startMosquitto(bin!);
    const port = own.port;
    const lines: string[] = [];
    const rig = await startRig({ ...pair, mode: 'inplace', cloud: { broker: own.url, log: (l) => lines.push(l) }, service: { reconnect: true } });
    try {
      await rig.svc.start();
      await own.close();
      await vi.waitFor(() => expect(lines.some((l) => l.startsWith(`lost the broker ${own.url}`))).toBe(true), { timeout: 10_000 });
      own = await startMosquitto(bin!, { port });
      await vi.waitFor(() => expect(lines.some((l) => /^back at the broker .* after \d+ attempt\(s\), .*resubscribed$/.test(l))).toBe(true), { timeout: 20_000 });
      // The device reconnects too and informs; the cloud hears it and pushes the job.
      const done = rig.cloud.waitFor((e) => e.type === 'succeeded', 30_000);
      await rig.cloud.createJob({ productKey: PK, version: '2.0.0' });
      await done;
      expect(rig.svc.running).toEqual({ slot: 'A', version: '2.0.0' });
    } finally {
      await rig.close();
      await own.close();
    }
  });
});

