import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readFileSync, existsSync } from 'node:fs';
import { buildSuffixArray, SuffixArrayError } from '../src/suffix-array.js';
import { buildLcpArray } from '../src/lcp-array.js';

/** Reference: sort all suffixes by direct comparison (a proper prefix sorts first). */
function naiveSuffixArray(d: Uint8Array): number[] {
  const n = d.length;
  const idx = Array.from({ length: n }, (_, i) => i);
  idx.sort((a, b) => {
    let i = 0;
    while (a + i < n && b + i < n && d[a + i] === d[b + i]) i++;
    if (a + i === n) return -1;
    if (b + i === n) return 1;
    return d[a + i] - d[b + i];
  });
  return idx;
}

function naiveLcp(d: Uint8Array, sa: ArrayLike<number>): number[] {
  const out = sa.length > 0 ? [0] : [];
  for (let i = 1; i < sa.length; i++) {
    let h = 0;
    while (sa[i] + h < d.length && sa[i - 1] + h < d.length && d[sa[i] + h] === d[sa[i - 1] + h]) h++;
    out.push(h);
  }
  return out;
}

/** Checks that consecutive suffixes are strictly increasing and every position appears once. */
function assertSorted(d: Uint8Array, sa: Int32Array): void {
  const n = d.length;
  expect(sa.length).toBe(n);
  const seen = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    expect(seen[sa[i]]).toBe(0);
    seen[sa[i]] = 1;
  }
  for (let i = 1; i < n; i++) {
    const a = sa[i - 1];
    const b = sa[i];
    let h = 0;
    while (a + h < n && b + h < n && d[a + h] === d[b + h]) h++;
    const ok = a + h === n || (b + h < n && d[a + h] < d[b + h]);
    if (!ok) throw new Error(`suffixes ${a} and ${b} out of order at rank ${i}`);
  }
}

const alphabetText = (alphabet: number[], maxLength: number) =>
  fc.array(fc.constantFrom(...alphabet), { maxLength }).map((a) => Uint8Array.from(a));

describe('buildSuffixArray', () => {
  it('handles empty and single-byte input', () => {
    expect(Array.from(buildSuffixArray(new Uint8Array(0)))).toEqual([]);
    expect(Array.from(buildSuffixArray(Uint8Array.of(7)))).toEqual([0]);
    expect(Array.from(buildSuffixArray(new TextEncoder().encode('banana')))).toEqual([5, 3, 1, 0, 4, 2]);
  });

  it('rejects non-byte input and an output array of the wrong size', () => {
    expect(() => buildSuffixArray([1, 2, 3] as unknown as Uint8Array)).toThrow(SuffixArrayError);
    expect(() => buildSuffixArray(Uint8Array.of(1, 2, 3), new Int32Array(2))).toThrow(SuffixArrayError);
  });

  it('writes into a given output array, shared memory included', () => {
    const d = new TextEncoder().encode('mississippi$banana');
    const out = new Int32Array(new SharedArrayBuffer(4 * d.length));
    expect(buildSuffixArray(d, out)).toBe(out);
    expect(Array.from(out)).toEqual(naiveSuffixArray(d));
  });

  it('equals a naive sort on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (d) => {
        expect(Array.from(buildSuffixArray(d))).toEqual(naiveSuffixArray(d));
      }),
      { numRuns: 300 },
    );
  });

  it('equals a naive sort on two- and three-letter alphabets (deep recursion)', () => {
    fc.assert(
      fc.property(fc.oneof(alphabetText([0, 1], 400), alphabetText([97, 98, 99], 400), alphabetText([0, 255], 60)), (d) => {
        expect(Array.from(buildSuffixArray(d))).toEqual(naiveSuffixArray(d));
      }),
      { numRuns: 400 },
    );
  });

  it('equals a naive sort on all-equal bytes', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 500 }), (b, n) => {
        const d = new Uint8Array(n).fill(b);
        expect(Array.from(buildSuffixArray(d))).toEqual(naiveSuffixArray(d));
      }),
      { numRuns: 100 },
    );
  });

  it('equals a naive sort on periodic strings with noise', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 7 }),
        fc.integer({ min: 1, max: 400 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }),
        (period, n, noise) => {
          const d = new Uint8Array(n);
          for (let i = 0; i < n; i++) d[i] = period[i % period.length];
          for (const [at, v] of noise) d[at % n] = v;
          expect(Array.from(buildSuffixArray(d))).toEqual(naiveSuffixArray(d));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('equals a naive sort on Fibonacci words and squares (many recursion levels, equal LMS substrings)', () => {
    let a = [0];
    let b = [0, 1];
    while (b.length < 3000) [a, b] = [b, [...b, ...a]];
    const fib = Uint8Array.from(b);
    const square = Uint8Array.from([...b.slice(0, 700), ...b.slice(0, 700)]);
    for (const d of [fib, square, fib.map((x) => 255 - x)]) expect(Array.from(buildSuffixArray(d))).toEqual(naiveSuffixArray(d));
  });

  it('sorts slices of a real firmware image and a large structured buffer', () => {
    // The vendored ESP8266 corpus (corpus/esp8266-at).
    const file = new URL('../../../corpus/esp8266-at/at-v3.0.5.bin', import.meta.url);
    let image: Uint8Array;
    if (existsSync(file)) {
      image = new Uint8Array(readFileSync(file));
    } else {
      // Stand-in with firmware-like structure: code-ish bytes, padding and repeats.
      image = new Uint8Array(200_000);
      let s = 1;
      for (let i = 0; i < image.length; i++) {
        s = (Math.imul(s, 1103515245) + 12345) >>> 0;
        image[i] = i % 5000 < 800 ? 0xff : i > 20_000 && i % 3000 < 600 ? image[i - 17_000] : s >>> 24;
      }
    }
    for (const [from, len] of [
      [0, 3000],
      [100_000, 2500],
      [image.length - 2000, 2000],
    ]) {
      const slice = image.subarray(from, from + len);
      expect(Array.from(buildSuffixArray(slice))).toEqual(naiveSuffixArray(slice));
    }
    assertSorted(image, buildSuffixArray(image));
  });
});

describe('buildLcpArray', () => {
  it('matches direct comparison of neighbouring suffixes', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), alphabetText([0, 1], 300)), (d) => {
        const sa = buildSuffixArray(d);
        expect(Array.from(buildLcpArray(d, sa))).toEqual(naiveLcp(d, sa));
      }),
      { numRuns: 200 },
    );
  });

  it('rejects a suffix array of the wrong size or with bad entries', () => {
    const d = Uint8Array.of(1, 2, 3);
    expect(() => buildLcpArray(d, new Int32Array(2))).toThrow(SuffixArrayError);
    expect(() => buildLcpArray(d, Int32Array.of(0, 1, 9))).toThrow(SuffixArrayError);
  });
});
