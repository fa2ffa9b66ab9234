// The fleet bench at a small scale, as tests: the cloud SIGKILLed in the middle of a rollout and
// started again finishes it with nothing lost; two workers on PostgreSQL and mosquitto, one SIGKILLed
// mid-way, finish it with no device lost or told twice; a staged rollout (made with `otadiff serve
// rollout create`) with 20% of the devices failing pauses itself in its first or second wave having
// told few devices, and with none failing completes. Real `otadiff serve` processes (the built CLI),
// real MQTT sign-ins, real HTTP Range downloads, and a sample running the real restore. Also the
// fleet's failing devices: which ones (seeded), and the flash fault that makes them fail.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { espDir } from '../src/corpus.js';
import { mosquittoBinary } from '../src/fleet/mosquitto.js';
import { failingDevices, parseFailRate } from '../src/fleet/fail-choice.js';
import { STUCK_BYTES, STUCK_OFFSET, withStuckBytes } from '../src/fleet/flash-fault.js';
import { runFleet } from '../src/fleet/run-fleet.js';
import { freshPgDatabase, HAVE_PG } from '../../packages/ota-core/test/helpers/engines.js';

const old = new Uint8Array(readFileSync(join(espDir, 'at-v3.0.4.bin')));
const neu = new Uint8Array(readFileSync(join(espDir, 'at-v3.0.5.bin')));
const common = { old, neu, fromVersion: '3.0.4', toVersion: '3.0.5', deviceProcs: 1, connectPerSecond: 200, timeoutSec: 90 };
const mosquitto = mosquittoBinary();
if (mosquitto === null) console.warn('fleet: the two-worker test is SKIPPED: mosquitto is not installed (apt-get install mosquitto)');

describe('a rollout through a real cloud', () => {
  it('survives a SIGKILL of the cloud: started again, it finishes the rollout, nothing lost', async () => {
    const lines: string[] = [];
    const r = await runFleet({ ...common, devices: 40, restoreSample: 2, pushRate: 20, crashAt: 0.25, log: (l) => lines.push(l) });
    expect(r.killed, lines.join('\n')).toMatchObject({ restarted: true });
    expect(r.updated, [...lines, ...r.workerLogTail].join('\n')).toBe(40);
    expect(r.lost, JSON.stringify(r.lostDevices) + '\n' + [...lines, ...r.workerLogTail].join('\n')).toBe(0);
    expect(r.failed).toBe(0);
    expect(r.cloud.succeeded).toBe(40);
    expect(r.restoreSample).toEqual({ devices: 2, updated: 2 });
  }, 150_000);

  it.skipIf(!HAVE_PG || mosquitto === null)('two workers on PostgreSQL and mosquitto, one SIGKILLed mid-way: 100%, no device lost or told twice', async () => {
    const db = await freshPgDatabase();
    const lines: string[] = [];
    try {
      const r = await runFleet({ ...common, devices: 120, workers: 2, db: db.url, broker: 'mosquitto', restoreSample: 2, pushRate: 25, killAt: 0.3, log: (l) => lines.push(l) });
      expect(r.killed, lines.join('\n')).toMatchObject({ worker: 'fleet-w1', restarted: false });
      expect(r.updated, lines.join('\n')).toBe(120);
      expect(r.lost).toBe(0);
      expect(r.duplicatePushes).toBe(0);
      expect(r.cloud).toMatchObject({ succeeded: 120, notices: 120, devicesPushedTwice: 0 });
      expect(lines.some((l) => /taken over: \d+ message/.test(l)), lines.join('\n')).toBe(true);
    } finally {
      await db.drop();
    }
  }, 150_000);

  it('a staged rollout with 20% of the devices failing pauses itself in wave 1 or 2, having told under 15% of the fleet', async () => {
    const lines: string[] = [];
    // 400 devices: waves of 4 and 36; a wave of 40 drawn from a fleet with 80 failing devices has
    // none with a chance of 1 in 10,000, so the pause must come in one of the first two waves.
    const r = await runFleet({ ...common, devices: 400, restoreSample: 4, pushRate: 100, failRate: 0.2, rollout: { waves: '1%,10%,100%', maxFailures: '5%' }, log: (l) => lines.push(l) });
    const why = [...lines, ...r.workerLogTail].join('\n');
    expect(r.failing).toBe(80);
    expect(r.rollout, why).not.toBeNull();
    const ro = r.rollout!;
    expect(ro.state, why).toBe('paused');
    expect(ro.wave).toBeGreaterThanOrEqual(1);
    expect(ro.wave).toBeLessThanOrEqual(2);
    expect(ro.reason).toMatch(new RegExp(`^wave ${ro.wave}: \\d+ of \\d+ device\\(s\\) failed, above the limit of \\d+ \\(max failures 5%\\)`));
    expect(ro.waves.map((w) => w.target)).toEqual([4, 40, 400]);
    expect(ro.waves[2].devices, 'the last wave never started').toBe(0);
    // Every device told took part, and finished: updated or failed, at the devices and in the cloud.
    expect(r.notified, why).toBeLessThanOrEqual(40);
    expect(r.notifiedFraction).toBeLessThan(0.15);
    expect(r.notified).toBe(ro.cloudNotified);
    expect(r.updated + r.failed, why).toBe(r.notified);
    expect(r.failed).toBeGreaterThan(0);
    expect(r.lost, JSON.stringify(r.lostDevices)).toBe(0);
    expect(r.cloud.failed).toBe(r.failed);
    expect(r.cloud.failedSteps, 'each failed device reported a verify failure').toEqual({ '-3': r.failed });
    expect(ro.waves.reduce((s, w) => s + w.failed, 0)).toBe(r.failed);
  }, 150_000);

  it('a staged rollout with no device failing completes all three waves', async () => {
    const lines: string[] = [];
    const r = await runFleet({ ...common, devices: 200, restoreSample: 2, pushRate: 100, failRate: 0, rollout: { waves: '1%,10%,100%', maxFailures: '5%' }, log: (l) => lines.push(l) });
    const why = [...lines, ...r.workerLogTail].join('\n');
    expect(r.rollout?.state, why).toBe('completed');
    expect(r.rollout!.wave).toBe(3);
    expect(r.rollout!.waves.map((w) => [w.target, w.devices, w.succeeded, w.failed])).toEqual([
      [2, 2, 2, 0],
      [20, 18, 18, 0],
      [200, 180, 180, 0],
    ]);
    expect(r.updated, why).toBe(200);
    expect(r.failed).toBe(0);
    expect(r.notified).toBe(200);
    expect(r.lost).toBe(0);
    expect(r.restoreSample).toEqual({ devices: 2, updated: 2 });
  }, 150_000);
});

describe('the failing devices', () => {
  it('are round(rate × n), the same for a seed and others for another', () => {
    const a = failingDevices(1000, 0.2, 1);
    expect(a.size).toBe(200);
    expect([...a].every((i) => Number.isInteger(i) && i >= 0 && i < 1000)).toBe(true);
    expect(failingDevices(1000, 0.2, 1)).toEqual(a);
    const b = failingDevices(1000, 0.2, 2);
    expect([...b].filter((i) => a.has(i)).length).toBeLessThan(120);
    expect(failingDevices(7, 0.5, 1).size).toBe(4);
    expect(failingDevices(10, 0, 1).size).toBe(0);
    expect(failingDevices(10, 1, 1).size).toBe(10);
  });

  it('--fail-rate takes a fraction or a percentage', () => {
    expect(parseFailRate('0.2')).toBe(0.2);
    expect(parseFailRate('20%')).toBe(0.2);
    expect(parseFailRate('0')).toBe(0);
    expect(parseFailRate('100%')).toBe(1);
    for (const bad of ['20', '1.5', '-0.1', '120%', 'x', '']) expect(() => parseFailRate(bad), bad).toThrow(/--fail-rate must be/);
  });

  it('read back zeros at the stuck bytes of their OTA partition, and only there', () => {
    const data = new Uint8Array(4096).fill(0xa5);
    const head = data.subarray(0, 1024);
    expect(withStuckBytes(0, head), 'a program before the stuck bytes is left as it is').toBe(head);
    const back = withStuckBytes(0, data);
    expect(back).not.toBe(data);
    expect([...back].filter((x) => x === 0).length).toBe(STUCK_BYTES);
    expect(back.subarray(STUCK_OFFSET, STUCK_OFFSET + STUCK_BYTES).every((x) => x === 0)).toBe(true);
    expect(data.every((x) => x === 0xa5), 'the input is left alone').toBe(true);
    // A program that covers part of the stuck bytes.
    const tail = withStuckBytes(STUCK_OFFSET + 4, new Uint8Array(8).fill(0xff));
    expect([...tail]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    const edge = withStuckBytes(STUCK_OFFSET - 2, new Uint8Array(4).fill(0xff));
    expect([...edge]).toEqual([0xff, 0xff, 0, 0]);
    const clear = new Uint8Array(100).fill(1);
    expect(withStuckBytes(STUCK_OFFSET + STUCK_BYTES, clear)).toBe(clear);
  });
});
