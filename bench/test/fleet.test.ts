// The fleet bench at a small scale, as tests: the cloud SIGKILLed in the middle of a rollout and
// started again finishes it with nothing lost; two workers on PostgreSQL and mosquitto, one SIGKILLed
// mid-way, finish it with no device lost or told twice. Real `otadiff serve` processes (the built
// CLI), real MQTT sign-ins, real HTTP Range downloads, and a sample running the real restore.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { espDir } from '../src/corpus.js';
import { mosquittoBinary } from '../src/fleet/mosquitto.js';
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
