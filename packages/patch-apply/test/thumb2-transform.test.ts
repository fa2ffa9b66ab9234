// The Thumb-2 transform's pure functions: the NEW side is an exact bijection on any bytes, block by
// block; the OLD side (the prediction) is the same whether the image is taken whole or a block at a time.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { forEachThumb2Reference, thumb2Decode, thumb2Encode, thumb2Predict } from '../src/transform/thumb2.js';
import { TRANSFORM_BLOCK } from '../src/transform/block.js';
import { EMPTY_LABEL_MAP, type LabelMap } from '../src/transform/label-map.js';
import { PredictedSource } from '../src/transform/predicted-source.js';
import { CODECS } from '../src/transform/codecs.js';
import { memorySource } from '../src/source-reader.js';
import { thumbPair } from './helpers/thumb-images.js';

const MICROBIT = new URL('../../../corpus/microbit-codal/', import.meta.url);
const microbit = (name: string) => new Uint8Array(readFileSync(new URL(`${name}.bin`, MICROBIT)));
const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Buffer.compare(a, b) === 0;

function encoded(bytes: Uint8Array, offset = 0): Uint8Array {
  const b = bytes.slice();
  thumb2Encode(b, b.length, offset);
  return b;
}

function roundTrips(bytes: Uint8Array, offset = 0): boolean {
  const b = encoded(bytes, offset);
  thumb2Decode(b, b.length, offset);
  return same(b, bytes);
}

/** Branch sites of a buffer (their positions). */
function sites(bytes: Uint8Array): number[] {
  const out: number[] = [];
  forEachThumb2Reference(bytes, bytes.length, 0, { base: 0, span: 0, origin: 0 }, (s) => out.push(s), () => {});
  return out;
}

// Bytes rich in branch sites: random halfwords where every other pair is forced into the BL / B.W shape.
const siteRich = fc.uint8Array({ minLength: 0, maxLength: 3 * TRANSFORM_BLOCK }).map((b) => {
  const out = b.slice();
  for (let s = 0; s + 4 <= out.length; s += 6) {
    out[s + 1] = 0xf0 | (out[s + 1] & 0x07);
    out[s + 3] = 0xb8 | (out[s + 3] & 0x47);
  }
  return out;
});

const aMap: fc.Arbitrary<LabelMap> = fc
  .array(fc.tuple(fc.integer({ min: 0, max: 1 << 16 }), fc.integer({ min: -4096, max: 4096 })), { maxLength: 12 })
  .map((segs) => {
    const sorted = [...new Map(segs.map(([s, d]) => [s, d])).entries()].sort((a, b) => a[0] - b[0]);
    return { starts: Int32Array.from(sorted, (e) => e[0]), deltas: Int32Array.from(sorted, (e) => e[1]) };
  });

describe('Thumb-2 transform: NEW side', () => {
  it('decode undoes encode exactly on any bytes, at any block offset', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 3 * TRANSFORM_BLOCK }), siteRich), fc.nat({ max: 1 << 12 }), (bytes, block) => roundTrips(bytes, block * TRANSFORM_BLOCK)),
      { seed: 15, numRuns: 300 },
    );
  });

  it('keeps the sites: the encoded bytes have exactly the sites of the original, and only their offsets change', () => {
    fc.assert(
      fc.property(siteRich, (bytes) => {
        const e = encoded(bytes);
        expect(sites(e)).toEqual(sites(bytes));
        const touched = new Set(sites(bytes).flatMap((s) => [s, s + 1, s + 2, s + 3]));
        for (let i = 0; i < bytes.length; i++) if (!touched.has(i)) expect(e[i]).toBe(bytes[i]);
        // Opcode bits (the top five of each halfword) never change.
        for (const s of sites(bytes)) expect([e[s + 1] & 0xf8, e[s + 3] & 0xf8]).toEqual([bytes[s + 1] & 0xf8, bytes[s + 3] & 0xf8]);
      }),
      { seed: 16, numRuns: 200 },
    );
  });

  it('turns a branch into its target: two calls of one function from different places encode alike', () => {
    const bl = (from: number, to: number) => {
      const off = (to - (from + 4)) >> 1;
      return [off >> 11 & 0xff, 0xf0 | ((off >> 19) & 7), off & 0xff, 0xf8 | ((off >> 8) & 7)];
    };
    const b = new Uint8Array(64);
    b.set(bl(8, 40), 8);
    b.set(bl(20, 40), 20);
    b.set(bl(60, 0), 60);
    const e = encoded(b);
    expect(Array.from(e.subarray(8, 12))).toEqual(Array.from(e.subarray(20, 24)));
    expect(sites(b)).toEqual([8, 20, 60]);
    expect(roundTrips(b)).toBe(true);
  });

  it('is block-local: a real image transformed whole or chunk by chunk (any block-multiple cut) is the same', () => {
    const img = microbit('v2a-8.1.32');
    const whole = encoded(img);
    for (const split of [TRANSFORM_BLOCK, 3 * TRANSFORM_BLOCK, 16 * TRANSFORM_BLOCK]) {
      const pieces = new Uint8Array(img.length);
      for (let at = 0; at < img.length; at += split) pieces.set(encoded(img.subarray(at, Math.min(img.length, at + split)), at), at);
      expect(same(pieces, whole)).toBe(true);
    }
    // A real image has thousands of sites, and the transform changes them.
    expect(sites(img).length).toBeGreaterThan(5000);
    expect(same(whole, img)).toBe(false);
  });

  it('round-trips real images and every truncation at and around each block boundary', () => {
    for (const name of ['v1a-4.0.24', 'v2b-7.0.6']) {
      const img = microbit(name);
      expect(roundTrips(img)).toBe(true);
      for (let end = TRANSFORM_BLOCK; end < img.length; end += TRANSFORM_BLOCK)
        for (const d of [-5, -4, -3, -2, -1, 0, 1, 2, 3]) expect(roundTrips(img.subarray(0, end + d))).toBe(true);
    }
  });

  it('refuses a buffer that does not start on a block boundary', () => {
    expect(() => thumb2Encode(new Uint8Array(8), 8, 2)).toThrow(RangeError);
    expect(() => thumb2Decode(new Uint8Array(8), 8, TRANSFORM_BLOCK + 4)).toThrow(RangeError);
    expect(() => thumb2Predict(new Uint8Array(8), 8, -TRANSFORM_BLOCK, { map: EMPTY_LABEL_MAP, base: 0, span: 8, origin: 0 })).toThrow(RangeError);
  });
});

describe('Thumb-2 transform: OLD side (the prediction)', () => {
  it('with an empty map it is the NEW-side encoding (address words stay)', () => {
    const { old, base } = thumbPair(60);
    const p = old.slice();
    thumb2Predict(p, p.length, 0, { map: EMPTY_LABEL_MAP, base, span: old.length, origin: base });
    expect(same(p, encoded(old))).toBe(true);
  });

  it('rewrites address words and branch targets through the map', () => {
    const { old, base } = thumbPair(60);
    const shift: LabelMap = { starts: Int32Array.of(0), deltas: Int32Array.of(16) };
    const p = old.slice();
    thumb2Predict(p, p.length, 0, { map: shift, base, span: old.length, origin: base });
    let words = 0;
    forEachThumb2Reference(old, old.length, 0, { base, span: old.length, origin: base }, () => {}, (w, x) => {
      words++;
      expect(new DataView(p.buffer).getUint32(w, true)).toBe(base + x + 16);
    });
    expect(words).toBeGreaterThan(20);
    // A branch's field is (target + 16) / 2: what thumb2Encode makes of the same branch 16 bytes further.
    const e = encoded(old);
    for (const s of sites(old)) {
      const f = (b: Uint8Array) => ((b[s + 1] & 7) << 19) | (b[s] << 11) | ((b[s + 3] & 7) << 8) | b[s + 2];
      expect(f(p)).toBe((f(e) + 8) & 0x3fffff);
    }
  });

  it('any read of the predicted source, at any boundary, gives the whole-image prediction (random access)', () => {
    const img = microbit('v1b-7.0.6');
    fc.assert(
      fc.property(aMap, fc.array(fc.tuple(fc.nat({ max: img.length - 1 }), fc.integer({ min: 1, max: 9000 })), { minLength: 1, maxLength: 20 }), fc.nat({ max: 40 }), (map, reads, boundaryBlocks) => {
        const prediction = { map, base: 0, span: img.length, origin: 0 };
        const whole = img.slice();
        thumb2Predict(whole, whole.length, 0, prediction);
        const boundary = boundaryBlocks * TRANSFORM_BLOCK;
        const src = new PredictedSource(memorySource(img), CODECS.thumb2, prediction, img.length);
        src.reset(boundary);
        for (const [at, n] of reads) {
          const len = Math.min(n, img.length - at);
          const got = new Uint8Array(len);
          src.read(at, got, 0, len);
          const want = whole.slice(at, at + len);
          if (at < boundary) want.set(img.subarray(at, Math.min(at + len, boundary)));
          expect(same(got, want)).toBe(true);
        }
      }),
      { seed: 17, numRuns: 40 },
    );
  });

  it('is deterministic on any bytes: a block predicted alone equals it predicted inside the whole', () => {
    fc.assert(
      fc.property(siteRich, aMap, fc.nat(), (bytes, map, base) => {
        const prediction = { map, base: base >>> 0, span: bytes.length, origin: base >>> 0 };
        const whole = bytes.slice();
        thumb2Predict(whole, whole.length, 0, prediction);
        for (let at = 0; at < bytes.length; at += TRANSFORM_BLOCK) {
          const b = bytes.slice(at, at + TRANSFORM_BLOCK);
          thumb2Predict(b, b.length, at, prediction);
          expect(same(b, whole.subarray(at, at + b.length))).toBe(true);
        }
      }),
      { seed: 18, numRuns: 100 },
    );
  });
});
