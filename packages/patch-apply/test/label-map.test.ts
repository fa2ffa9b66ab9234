import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeLabelMap, encodeLabelMap, encodedLabelMapLength, mapLabel, type LabelMap } from '../src/transform/label-map.js';
import { PackageError } from '../src/package-error.js';
import { codeOf } from './helpers/error-code.js';

const SPAN = 1 << 20;

/** Valid maps: increasing starts inside the span, each start mapped inside it too. */
const validMap: fc.Arbitrary<LabelMap> = fc.uniqueArray(fc.nat({ max: SPAN - 1 }), { maxLength: 64 }).chain((starts) => {
  const sorted = [...starts].sort((a, b) => a - b);
  return fc.tuple(...sorted.map((s) => fc.integer({ min: -s, max: SPAN - s }))).map((deltas) => ({ starts: Int32Array.from(sorted), deltas: Int32Array.from(deltas) }));
});

function encode(m: LabelMap): Uint8Array {
  const out = new Uint8Array(encodedLabelMapLength(m));
  expect(encodeLabelMap(m, out, 0)).toBe(out.length);
  return out;
}


describe('label map', () => {
  it('round-trips any valid map through its encoding', () => {
    fc.assert(
      fc.property(validMap, (m) => {
        const back = decodeLabelMap(encode(m), m.starts.length, SPAN);
        expect(Array.from(back.starts)).toEqual(Array.from(m.starts));
        expect(Array.from(back.deltas)).toEqual(Array.from(m.deltas));
      }),
      { seed: 3, numRuns: 300 },
    );
  });

  it('maps each offset by the segment it falls in, and is the identity below the first', () => {
    const m: LabelMap = { starts: Int32Array.of(100, 200, 300), deltas: Int32Array.of(4, -8, 0) };
    expect([0, 99, 100, 199, 200, 299, 300, 1 << 30, -5].map((x) => mapLabel(m, x))).toEqual([0, 99, 104, 203, 192, 291, 300, 1 << 30, -5]);
    expect(mapLabel({ starts: new Int32Array(0), deltas: new Int32Array(0) }, 77)).toBe(77);
  });

  it('refuses every malformed encoding with a PackageError', () => {
    const ok = encode({ starts: Int32Array.of(10, 20), deltas: Int32Array.of(1, 2) });
    expect(codeOf(() => decodeLabelMap(ok, 2, SPAN))).toBe('no error');
    const cases: [string, Uint8Array, number, number][] = [
      ['more segments than bytes', ok, 3, SPAN],
      ['fewer segments than bytes', ok, 1, SPAN],
      ['a start not after the previous one', Uint8Array.of(10, 2, 0, 2), 2, SPAN],
      ['a start past the span', Uint8Array.of(10, 2), 1, 10],
      ['a start mapped past the span', Uint8Array.of(10, 20), 1, 19],
      ['a start mapped below 0', Uint8Array.of(10, 21), 1, SPAN],
      ['a number cut short', Uint8Array.of(10, 0x80), 1, SPAN],
      ['a number over 32 bits', Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x10, 0), 1, SPAN],
    ];
    for (const [what, bytes, count, span] of cases) expect(codeOf(() => decodeLabelMap(bytes, count, span)), what).toBe('bad-header');
  });

  it('refuses random bytes cleanly or decodes them into a valid map', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.nat({ max: 25 }), (bytes, count) => {
        let m: LabelMap;
        try {
          m = decodeLabelMap(bytes, count, 5000);
        } catch (e) {
          expect(e).toBeInstanceOf(PackageError);
          return;
        }
        for (let k = 0; k < count; k++) {
          expect(m.starts[k]).toBeLessThan(5000);
          if (k > 0) expect(m.starts[k]).toBeGreaterThan(m.starts[k - 1]);
          expect(m.starts[k] + m.deltas[k]).toBeGreaterThanOrEqual(0);
          expect(m.starts[k] + m.deltas[k]).toBeLessThanOrEqual(5000);
        }
      }),
      { seed: 4, numRuns: 500 },
    );
  });
});
