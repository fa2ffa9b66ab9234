import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeLabelMap, encodeLabelMap, encodedLabelMapLength, mapLabel, MAX_LABEL_SPAN, type LabelMap } from '../src/transform/label-map.js';
import { chunkMaskOf, encodeTransformSection, parseTransformSection, transformSectionLength, type PackageTransform } from '../src/transform/transform-section.js';
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

  it('labels are below 2^31: a segment may start at 2^31 - 1 and maps there, a start at 2^31 or a larger span is refused', () => {
    const L = 2 ** 31;
    expect(MAX_LABEL_SPAN).toBe(L);
    const top = L - 1;
    const edge: LabelMap = { starts: Int32Array.of(1000, top), deltas: Int32Array.of(8, -5) };
    const m = decodeLabelMap(encode(edge), 2, L);
    expect(Array.from(m.starts)).toEqual([1000, top]);
    // A word's label just below the span, one in the segment before, a branch's below the image.
    expect([top, top - 1, 5000, 999, -3].map((x) => mapLabel(m, x))).toEqual([top - 5, (top - 1 + 8) | 0, 5008, 999, -3]);
    // The start 2^31 (LEB128 80 80 80 80 08) with delta +1: an Int32Array holds it as -2^31, which would
    // put every label in its segment.
    const at31 = Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x08, 2);
    for (const span of [L, L + 1, 2 ** 32 - 1]) expect(codeOf(() => decodeLabelMap(at31, 1, span)), `span ${span}`).toBe('bad-header');
    expect(codeOf(() => decodeLabelMap(new Uint8Array(0), 0, L + 1))).toBe('bad-header');
  });

  it('a transform section with a span above 2^31 is refused when read and cannot be written', () => {
    const L = 2 ** 31;
    const t: PackageTransform = { kind: 'xtensa', base: 0x1000, span: L, origin: 0x1000, chunkMask: chunkMaskOf(1, () => true), map: { starts: Int32Array.of(2 ** 31 - 1), deltas: Int32Array.of(1) } };
    const out = new Uint8Array(transformSectionLength(t, 1));
    encodeTransformSection(t, 1, out, 0);
    const context = { mode: 'inplace', chunkCount: 1, maxMapEntries: 16 };
    expect(Array.from(parseTransformSection(out, context).map.starts)).toEqual([2 ** 31 - 1]);
    // The same section with span 2^31 + 1 (the 32-bit field at offset 8).
    new DataView(out.buffer).setUint32(8, L + 1, true);
    expect(() => parseTransformSection(out, context)).toThrow(PackageError);
    expect(() => parseTransformSection(out, context)).toThrow(/exceeds 2\^31/);
    expect(() => encodeTransformSection({ ...t, span: L + 1 }, 1, new Uint8Array(out.length), 0)).toThrow(RangeError);
  });
});
