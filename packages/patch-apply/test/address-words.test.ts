// The Xtensa transform: address words carried through the map on the OLD side, nothing on the NEW side.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { forEachAddressWord, predictAddressWords } from '../src/transform/address-words.js';
import { CODECS } from '../src/transform/codecs.js';
import { PredictedSource } from '../src/transform/predicted-source.js';
import { memorySource } from '../src/source-reader.js';
import { TRANSFORM_BLOCK } from '../src/transform/thumb2.js';
import type { LabelMap } from '../src/transform/label-map.js';

const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Buffer.compare(a, b) === 0;
const word = (b: Uint8Array, w: number) => new DataView(b.buffer, b.byteOffset).getUint32(w, true);

describe('Xtensa transform (address words)', () => {
  it('rewrites exactly the aligned words inside [base, base + span), through the map', () => {
    const b = new Uint8Array(64);
    const v = new DataView(b.buffer);
    v.setUint32(0, 0x4020_1000, true); // base + 0
    v.setUint32(4, 0x4020_1100, true); // base + 0x100: shifted by the second segment
    v.setUint32(8, 0x4020_0fff, true); // below base
    v.setUint32(12, 0x4020_3000, true); // base + span: outside
    v.setUint32(18, 0x4020_1100, true); // not aligned
    const map: LabelMap = { starts: Int32Array.of(0x80), deltas: Int32Array.of(0x20) };
    const p = b.slice();
    predictAddressWords(p, p.length, 0, { map, base: 0x4020_1000, span: 0x2000 });
    expect([0, 4, 8, 12].map((w) => word(p, w))).toEqual([0x4020_1000, 0x4020_1120, 0x4020_0fff, 0x4020_3000]);
    expect(same(p.subarray(16), b.subarray(16))).toBe(true);
    const seen: number[] = [];
    forEachAddressWord(b, b.length, 0, 0x4020_1000, 0x2000, (w, x) => seen.push(w, x));
    expect(seen).toEqual([0, 0, 4, 0x100]);
  });

  it('the NEW side is the identity, and any read of the predicted source is the whole-image prediction', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3 * TRANSFORM_BLOCK }), fc.nat(), fc.integer({ min: 1, max: 1 << 20 }), fc.array(fc.tuple(fc.nat(), fc.nat({ max: 5000 })), { maxLength: 8 }), (bytes, base, span, reads) => {
        const e = bytes.slice();
        CODECS.xtensa.encode(e, e.length, 0);
        CODECS.xtensa.decode(e, e.length, 0);
        expect(same(e, bytes)).toBe(true);
        const prediction = { map: { starts: Int32Array.of(0), deltas: Int32Array.of(4) }, base: base >>> 0, span };
        const whole = bytes.slice();
        predictAddressWords(whole, whole.length, 0, prediction);
        const src = new PredictedSource(memorySource(bytes), CODECS.xtensa, prediction, bytes.length);
        src.reset(0);
        for (const [at0, n] of reads) {
          if (bytes.length === 0) break;
          const at = at0 % bytes.length;
          const len = Math.min(n, bytes.length - at);
          const got = new Uint8Array(len);
          src.read(at, got, 0, len);
          expect(same(got, whole.subarray(at, at + len))).toBe(true);
        }
      }),
      { seed: 31, numRuns: 200 },
    );
  });
});
