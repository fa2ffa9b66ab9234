// The generator's Thumb-2 transform end to end: packages that are smaller where code moved, restore
// exactly (whole, streamed in any pieces, chunk by chunk alone), and never grow where the transform
// does not pay.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  applyPackage,
  chunkLength,
  chunkTransformed,
  ChunkDecoder,
  memorySource,
  parseHeader,
  recordsOffset,
  StreamPatcher,
  windowBoundary,
  type PackageHeader,
  type PatchMode,
} from '@otadiff/patch-apply';
import { generatePackage, GenerateError } from '../src/generate.js';
import { guessLoadAddress } from '../src/load-address.js';
import { looksLikeThumb2, planTransform } from '../src/transform-plan.js';
import { esp8266Layout } from '../src/esp8266-image.js';
import { thumbPair } from '../../patch-apply/test/helpers/thumb-images.js';

const MICROBIT = new URL('../../../corpus/microbit-codal/', import.meta.url);
const microbit = (name: string) => new Uint8Array(readFileSync(new URL(`${name}.bin`, MICROBIT)));
const ESP = new URL('../../../corpus/esp8266-at/', import.meta.url);
const esp = (v: string) => new Uint8Array(readFileSync(new URL(`at-v${v}.bin`, ESP)));
const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Buffer.compare(a, b) === 0;

/**
 * Restores every chunk on its own from a window as the device has it at that moment (random access:
 * a fresh decoder, nothing carried over from other chunks) and compares it with NEW.
 */
function eachChunkAlone(old: Uint8Array, neu: Uint8Array, pkg: Uint8Array, h: PackageHeader): void {
  const at = recordsOffset(h);
  for (let i = h.chunks.length - 1; i >= 0; i--) {
    const B = windowBoundary(h, i);
    const window = new Uint8Array(Math.max(B, old.length));
    window.set(old);
    window.set(neu.subarray(0, B));
    const d = new ChunkDecoder(h, memorySource(window));
    const e = h.chunks[i];
    const out = d.decodeChunk(i, e, (off, dst, dstOff, len) => dst.set(pkg.subarray(at + e.recordOffset + off, at + e.recordOffset + off + len), dstOff));
    expect(same(out, neu.subarray(i * h.splitSize, i * h.splitSize + chunkLength(h, i)))).toBe(true);
  }
}

function streamed(old: Uint8Array, pkg: Uint8Array, piece: number, mode: PatchMode): Uint8Array {
  const out = new Uint8Array(parseHeader(pkg).newSize);
  // ab keeps OLD intact; in place is applyPackage's business (its window follows the restore).
  if (mode !== 'ab') return applyPackage(old, pkg, { pieceSize: piece }).image;
  const p = new StreamPatcher({ source: memorySource(old), sink: (_i, off, bytes) => out.set(bytes, off) });
  for (let k = 0; k < pkg.length; k += piece) p.push(pkg.subarray(k, k + piece));
  p.end();
  return out;
}

describe('Thumb-2 transform in the generator', () => {
  for (const mode of ['inplace', 'ab'] as const) {
    it(`${mode}: a Thumb-like pair gets a smaller version-3 package that restores exactly, streamed and chunk by chunk`, async () => {
      const { old, neu, base } = thumbPair(400, 3);
      const plain = await generatePackage(old, neu, { mode, splitSize: 4096, transform: 'none' });
      const t = await generatePackage(old, neu, { mode, splitSize: 4096 });
      const h = t.header;
      expect(plain.header.diffVersion).toBe(2);
      expect(h.diffVersion).toBe(3);
      expect(h.transform!.base).toBe(base);
      expect(h.transform!.map.starts.length).toBeGreaterThan(0);
      expect(t.package.length).toBeLessThan(0.7 * plain.package.length);
      for (const piece of [1, 97, 4096, 1 << 20]) expect(same(streamed(old, t.package, piece, mode), neu)).toBe(true);
      eachChunkAlone(old, neu, t.package, h);
    });
  }

  it('real micro:bit pairs (Cortex-M0 and M4): far smaller packages, and every chunk restores alone', async () => {
    for (const [v, a, b] of [['v1a', '7.0.6', '8.1.32'], ['v2b', '4.0.24', '7.0.6']]) {
      const old = microbit(`${v}-${a}`);
      const neu = microbit(`${v}-${b}`);
      const plain = await generatePackage(old, neu, { transform: 'none' });
      for (const mode of ['inplace', 'ab'] as const) {
        const t = await generatePackage(old, neu, { mode });
        expect(t.header.transform?.kind).toBe('thumb2');
        // Measured: 0.26x (v1a) and 0.73x (v2b) of the plain package.
        expect(t.package.length, `${v} ${mode}`).toBeLessThan(0.8 * plain.package.length);
        eachChunkAlone(old, neu, t.package, t.header);
      }
    }
  });

  it('ESP8266 pairs get the Xtensa transform (CALL0s and address words), smaller, every chunk restoring alone', async () => {
    const old = esp('3.0.2');
    const neu = esp('3.0.3');
    const plain = await generatePackage(old, neu, { transform: 'none' });
    for (const mode of ['inplace', 'ab'] as const) {
      const t = await generatePackage(old, neu, { mode });
      // The segments' addresses: DRAM from 0x3FFE8000 to the end of irom0 (mapped at 0x40201010).
      expect(t.header.transform).toMatchObject({ kind: 'xtensa', base: 0x3ffe_8000 });
      // Measured: 0.76x of the plain package.
      expect(t.package.length, mode).toBeLessThan(0.85 * plain.package.length);
      eachChunkAlone(old, neu, t.package, t.header);
    }
  });

  it('never grows a package: where a transform does not pay, the package is the plain one', async () => {
    // Thumb-2 forced on Xtensa code, Xtensa forced on Thumb-2 code.
    for (const [old, neu, transform] of [[esp('3.0.4'), esp('3.0.5'), 'thumb2'], [microbit('v1a-7.0.6'), microbit('v1a-8.1.32'), 'xtensa']] as const) {
      const none = await generatePackage(old, neu, { transform: 'none' });
      const forced = await generatePackage(old, neu, { transform });
      expect(forced.package.length).toBeLessThanOrEqual(none.package.length);
      if (forced.header.transform === null) expect(same(forced.package, none.package)).toBe(true);
    }
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 12000 }), fc.uint8Array({ maxLength: 12000 }), fc.constantFrom('thumb2' as const, 'xtensa' as const, 'auto' as const), async (o, n, transform) => {
        const t = await generatePackage(o, n, { splitSize: 4096, transform });
        const p = await generatePackage(o, n, { splitSize: 4096, transform: 'none' });
        expect(t.package.length).toBeLessThanOrEqual(p.package.length);
        expect(same(applyPackage(o, t.package).image, n)).toBe(true);
      }),
      { seed: 21, numRuns: 15 },
    );
  });

  it('transformEveryChunk transforms every chunk, whatever it costs, and still restores (both modes, both kinds, random bytes)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 20000 }), fc.uint8Array({ minLength: 1, maxLength: 20000 }), fc.constantFrom('inplace' as const, 'ab' as const), fc.constantFrom('thumb2' as const, 'xtensa' as const), fc.option(fc.nat()), async (o, n, mode, transform, base) => {
        const t = await generatePackage(o, n, { mode, splitSize: 4096, transform, transformEveryChunk: true, base: base ?? undefined });
        const h = t.header;
        expect(h.chunks.every((_c, i) => chunkTransformed(h.transform, i))).toBe(true);
        expect(same(applyPackage(o, t.package).image, n)).toBe(true);
        eachChunkAlone(o, n, t.package, h);
      }),
      { seed: 22, numRuns: 20 },
    );
  });

  it('auto picks the transform by what the images are, and leaves other images alone without trying', () => {
    expect(planTransform(esp('3.0.4'), esp('3.0.5'), 'auto')?.kind).toBe('xtensa');
    expect(planTransform(microbit('v2a-4.0.24'), microbit('v2a-7.0.6'), 'auto')).toEqual({ kind: 'thumb2', base: 0, span: 520995, origin: 0 });
    expect(planTransform(esp('3.0.4'), esp('3.0.5'), 'auto')).toMatchObject({ kind: 'xtensa', base: 0x3ffe_8000, origin: 0x4020_1000 });
    expect(planTransform(new Uint8Array(5000), new Uint8Array(5000), 'auto')).toBeNull();
    expect(planTransform(microbit('v2a-4.0.24'), microbit('v2a-7.0.6'), 'none')).toBeNull();
    expect(planTransform(new Uint8Array(100), new Uint8Array(200), 'xtensa', 0x4000)).toEqual({ kind: 'xtensa', base: 0x4000, span: 200, origin: 0x4000 });
    // Segments loading at 0x10 and 0xF0000000: labels are cut at the format's 2^31.
    const far = new Uint8Array(8 + 2 * (8 + 16));
    far.set([0xe9, 2]);
    const v = new DataView(far.buffer);
    v.setUint32(8, 0x10, true);
    v.setUint32(12, 16, true);
    v.setUint32(8 + 24, 0xf000_0000, true);
    v.setUint32(12 + 24, 16, true);
    expect(esp8266Layout(far)?.ranges).toEqual([{ start: 0x10, end: 0x20 }, { start: 0xf000_0000, end: 0xf000_0010 }]);
    expect(planTransform(far, far, 'xtensa')).toMatchObject({ kind: 'xtensa', base: 0x10, span: 2 ** 31 });
    expect(planTransform(far, far, 'thumb2', 0x1000)).toMatchObject({ span: far.length });
    expect(looksLikeThumb2(esp('3.0.4'))).toBe(false);
    expect(looksLikeThumb2(new Uint8Array(100000).fill(0xff))).toBe(false);
    expect(looksLikeThumb2(microbit('v1a-4.0.24'))).toBe(true);
    expect(looksLikeThumb2(microbit('v2a-4.0.24'))).toBe(true);
    expect(looksLikeThumb2(thumbPair(400).old)).toBe(true);
  });

  it('reads the load address off the vector table, or takes it as given', async () => {
    expect(guessLoadAddress(thumbPair(100, 1, 0x0800_0000).old)).toBe(0x0800_0000);
    expect(guessLoadAddress(thumbPair(100, 1, 0x0001_c000).old)).toBe(0x0001_c000);
    const noVectors = thumbPair(100, 1, 0x0800_0000).old.slice();
    noVectors[4] &= 0xfe; // an even reset vector is no Thumb handler
    expect(guessLoadAddress(noVectors)).toBe(0);
    expect(guessLoadAddress(microbit('v2a-7.0.6'))).toBe(0);
    expect(guessLoadAddress(new Uint8Array(3))).toBe(0);
    const { old, neu } = thumbPair(200, 2, 0x0800_0000);
    const given = await generatePackage(old, neu, { splitSize: 4096, base: 0x0800_0000 });
    expect(given.header.transform!.base).toBe(0x0800_0000);
    // A wrong base loses the address words, not correctness.
    const wrong = await generatePackage(old, neu, { splitSize: 4096, base: 0x1000_0000, transform: 'thumb2', transformEveryChunk: true });
    expect(same(applyPackage(old, wrong.package).image, neu)).toBe(true);
    expect(wrong.package.length).toBeGreaterThan(given.package.length);
  });

  it('reads the address ranges of ESP8266 images, and nothing from other bytes', () => {
    expect(esp8266Layout(esp('2.2.0'))).toEqual({
      ranges: [
        { start: 0x4020_1010, end: 0x4020_1010 + 0x59f80 },
        { start: 0x4010_0000, end: 0x4010_0000 + 0x6b40 },
        { start: 0x3ffe_8000, end: 0x3ffe_8000 + 0x870 },
        { start: 0x3ffe_8870, end: 0x3ffe_8870 + 0x258c },
      ],
      // irom0's data starts at file offset 16, mapped at 0x40201010.
      origin: 0x4020_1000,
    });
    // A plain 0xE9 image: code runs from its first IRAM segment.
    const e9 = esp('2.2.0').slice(0x59f90);
    expect(esp8266Layout(e9)).toMatchObject({ origin: 0x4010_0000 - 16 });
    expect(esp8266Layout(microbit('v1a-4.0.24'))).toBeNull();
    expect(esp8266Layout(esp('2.2.0').subarray(0, 0x59f80))).toBeNull();
    expect(esp8266Layout(Uint8Array.of(0xe9, 0))).toBeNull();
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
      for (const r of esp8266Layout(Uint8Array.of(0xe9, ...b))?.ranges ?? []) expect(r.end).toBeGreaterThanOrEqual(r.start);
    }), { seed: 5, numRuns: 200 });
  });

  it('refuses bad transform options', async () => {
    const a = new Uint8Array(100);
    await expect(generatePackage(a, a, { transform: 'xtensa9' as never })).rejects.toThrow(GenerateError);
    await expect(generatePackage(a, a, { base: -1 })).rejects.toThrow(GenerateError);
    await expect(generatePackage(a, a, { base: 2 ** 32 })).rejects.toThrow(GenerateError);
    await expect(generatePackage(a, a, { maxMapEntries: 1.5 })).rejects.toThrow(GenerateError);
  });

  it('keeps the map within maxMapEntries (coarser segments), and the device limit is checked', async () => {
    const old = microbit('v2a-7.0.6');
    const neu = microbit('v2a-8.1.32');
    const t = await generatePackage(old, neu, { maxMapEntries: 20, transform: 'thumb2', transformEveryChunk: true });
    expect(t.header.transform!.map.starts.length).toBeLessThanOrEqual(20);
    expect(() => applyPackage(old, t.package, { limits: { maxDictSize: 1 << 20, maxSplitSize: 1 << 20, maxImageSize: 1 << 24, maxMapEntries: 5 } })).toThrow(/exceeds this device's limit/);
  });
});
