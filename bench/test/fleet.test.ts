// The fleet bench at a small scale, as tests: the cloud SIGKILLed in the middle of a rollout and
// started again finishes it with nothing lost; two workers on PostgreSQL and mosquitto, one SIGKILLed
// mid-way, finish it with no device lost or told twice. Real `otadiff serve` processes (the built
// CLI), real MQTT sign-ins, real HTTP Range downloads, and a sample running the real restore. Also
// the fleet's failing devices: which ones (seeded), and the flash fault that makes them fail.
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
