import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runOtaDemo } from '../src/demo.js';
import { HEAD_FETCH_BYTES } from '../src/device/package-head.js';
import { openNetworkHandles, recordNetworkBaseline } from './helpers/handles.js';
import { firmwarePair } from './helpers/ota-rig.js';

beforeAll(recordNetworkBaseline);
afterAll(async () => {
  expect(await openNetworkHandles()).toEqual([]);
});

// The README pair, cut to its first 160 KiB for speed (the corpus sits beside the repo);
// a synthetic pair where the corpus is not checked out.
const corpus = fileURLToPath(new URL('../../../corpus/esp8266-at/', import.meta.url));
function slicePair(): { old: Uint8Array; neu: Uint8Array; real: boolean } {
  if (!existsSync(`${corpus}at-v3.0.4.bin`)) return { ...firmwarePair(160 * 1024, 31), real: false };
  const cut = 160 * 1024;
  return {
    old: new Uint8Array(readFileSync(`${corpus}at-v3.0.4.bin`)).slice(0, cut),
    neu: new Uint8Array(readFileSync(`${corpus}at-v3.0.5.bin`)).slice(0, cut),
    real: true,
  };
}

describe('otadiff demo, in process', () => {
  it('updates as a diff through a dropped download and a power cut in the restore', async () => {
    const { old, neu } = slicePair();
    const lines: string[] = [];
    const s = await runOtaDemo({ oldImage: old, newImage: neu, oldVersion: '3.0.4', newVersion: '3.0.5', splitSize: 32 * 1024, log: (l) => lines.push(l) });
    expect(s.failures).toEqual([]);
    expect(s.ok).toBe(true);
    expect(s).toMatchObject({ mode: 'inplace', isDiff: true, imageMatches: true, finalVersion: '3.0.5', finalSlot: 'A', droppedConnections: 1, workDir: null });
    // Signed by a key made for the run; the device verified it and recorded NEW's counter.
    expect(s).toMatchObject({ signature: 'ed25519', securityCounter: 1, recordedCounter: 1 });
    expect(lines.some((l) => /^keys +package signing key pair made for this run \(Ed25519\)/.test(l))).toBe(true);
    expect(lines.some((l) => /signed head .*ed25519 signature verified, version 3\.0\.5, security counter 1/.test(l))).toBe(true);
    // The signed head by Range, a download cut part-way, the rest resumed: each byte sent once.
    expect(s.requests[0]).toEqual({ range: `bytes=0-${HEAD_FETCH_BYTES - 1}`, status: 206, bodyBytes: HEAD_FETCH_BYTES });
    expect(s.requests).toHaveLength(3);
    expect(s.requests[2].range).toBe(`bytes=${HEAD_FETCH_BYTES + s.requests[1].bodyBytes}-`);
    expect(s.bytesSent).toBe(s.packageBytes);
    expect(s.sentRatio).toBeLessThan(0.25);
    expect(s.fullImageBytes).toBe(neu.length);
    // The power went half-way through the restore; the next boot finished it.
    expect(s.powerCut).not.toBeNull();
    expect(s.powerCut!.op).toBe(Math.floor(s.powerCut!.restoreOps / 2));
    expect(s.boots).toEqual(['normal:A', 'powercut', 'trial:A']);
    expect(lines.some((l) => l.startsWith('power  CUT during the restore'))).toBe(true);
    expect(lines.at(-1)).toMatch(/^sent {3}\d+ bytes over HTTP/);
  });

  it('A/B mode without injected faults', async () => {
    const { old, neu } = firmwarePair(64 * 1024, 32);
    const s = await runOtaDemo({ oldImage: old, newImage: neu, mode: 'ab', splitSize: 16 * 1024, dropDownload: false, powerCut: false });
    expect(s).toMatchObject({ ok: true, mode: 'ab', finalSlot: 'B', finalVersion: '2.0.0', imageMatches: true, droppedConnections: 0, powerCut: null, signature: 'ed25519', recordedCounter: 1 });
    expect(s.boots).toEqual(['normal:A', 'trial:B']);
  });

  it('reports failure when the device cannot take the update', async () => {
    const { old, neu } = firmwarePair(64 * 1024, 33);
    // NEW larger than the device's slot (twice OLD): the device refuses the notice.
    const big = new Uint8Array(old.length * 3);
    big.set(neu);
    const s = await runOtaDemo({ oldImage: old, newImage: big, splitSize: 16 * 1024, powerCut: false, dropDownload: false, timeoutMs: 10_000 });
    expect(s.ok).toBe(false);
    expect(s.failures.join('\n')).toMatch(/the job failed: refused: the image does not fit slot A/);
    expect(s.imageMatches).toBe(false);
  });
});
