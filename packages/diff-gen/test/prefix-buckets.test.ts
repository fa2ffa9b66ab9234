import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { buildSuffixArray } from '../src/suffix-array.js';
import { bucketWidthFor, prefixBucketStarts } from '../src/prefix-buckets.js';
import { indexImage, matchChunk, type ChunkWindow, type SourceIndex } from '../src/matcher.js';
import { WindowSearcher, type SearchHit } from '../src/match-search.js';
import { applyEdit, codeLike, editArb } from './edits.js';

/** The zero-padded width-byte prefix of suffix p, as a number. */
function keyAt(d: Uint8Array, p: number, width: number): number {
  let key = 0;
  for (let j = 0; j < width; j++) key = key * 256 + (p + j < d.length ? d[p + j] : 0);
  return key;
}

describe('prefixBucketStarts', () => {
  it('puts every suffix in the bucket of its zero-padded prefix', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.array(fc.constantFrom(0, 1, 255), { maxLength: 300 }).map((a) => Uint8Array.from(a))), (d) => {
        const sa = buildSuffixArray(d);
        for (const width of [2, 3] as const) {
          const starts = prefixBucketStarts(d, width);
          expect(starts.length).toBe(256 ** width + 1);
          expect(starts[0]).toBe(0);
          expect(starts[256 ** width]).toBe(d.length);
          for (let r = 0; r < sa.length; r++) {
            const k = keyAt(d, sa[r], width);
            expect(starts[k] <= r && r < starts[k + 1]).toBe(true);
          }
        }
      }),
      { numRuns: 150 },
    );
  });

  it('uses three bytes only for large images', () => {
    expect(bucketWidthFor(1000)).toBe(2);
    expect(bucketWidthFor(10_000_000)).toBe(3);
  });
});

function randomBytes(n: number, seed: number): Uint8Array {
  let s = seed;
  return Uint8Array.from({ length: n }, () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0), s >>> 24));
}

describe('matchChunk with either bucket width', () => {
  it('finds the same ops (the three-byte table only shortens the search)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1000 }), fc.array(editArb, { maxLength: 4 }), fc.constantFrom('ab', 'inplace'), fc.boolean(), (seed, edits, mode, random) => {
        // Random bytes make small buckets, so searches often end at a bucket's edge.
        const oldImg = random ? randomBytes(20_000 + (seed % 5000), seed) : codeLike(20_000 + (seed % 5000), seed);
        // Padding-like runs give long LCPs and suffixes shorter than the prefix width at the end.
        oldImg.fill(0xff, 3000, 3000 + (seed % 700));
        const newImg = edits.reduce(applyEdit, oldImg);
        const S = 4096;
        const old2 = indexImage(oldImg);
        const old3: SourceIndex = { ...old2, buckets: prefixBucketStarts(oldImg, 3) };
        const newer2: SourceIndex = { data: newImg, sa: buildSuffixArray(newImg) };
        const newer3: SourceIndex = { ...newer2, buckets: prefixBucketStarts(newImg, 3) };
        for (let start = 0; start < newImg.length; start += S) {
          // A copy of the target, so that the new image is searched too (not located by rank).
          const target = newImg.slice(start, start + S);
          const B = mode === 'inplace' ? start : 0;
          const length = Math.max(B, oldImg.length);
          const w2: ChunkWindow = { old: old2, newer: B > 0 ? newer2 : undefined, boundary: B, length };
          const w3: ChunkWindow = { old: old3, newer: B > 0 ? newer3 : undefined, boundary: B, length };
          const startPos = Math.min(start, length);
          expect(matchChunk(target, w3, { startPos })).toEqual(matchChunk(target, w2, { startPos }));
        }
      }),
      { numRuns: 40 },
    );
  });

  it('gives the same hit for every search, including ones that end at a bucket edge', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1, max: 64 }), (seed, maxCompare) => {
        const oldImg = seed % 2 === 0 ? randomBytes(5000, seed) : codeLike(5000, seed);
        const target = randomBytes(600, seed + 1);
        target.set(oldImg.subarray(100, 300), 200);
        const old2 = indexImage(oldImg);
        const old3: SourceIndex = { ...old2, buckets: prefixBucketStarts(oldImg, 3) };
        const at = (old: SourceIndex) => new WindowSearcher({ old, boundary: 0, length: oldImg.length }, 32, maxCompare, false);
        const s2 = at(old2);
        const s3 = at(old3);
        const h2: SearchHit = { len: 0, pos: 0 };
        const h3: SearchHit = { len: 0, pos: 0 };
        for (let from = 0; from < target.length; from++) {
          s2.find(target, from, target.length, from, h2);
          s3.find(target, from, target.length, from, h3);
          expect(h3).toEqual(h2);
        }
      }),
      { numRuns: 60 },
    );
  });
});
