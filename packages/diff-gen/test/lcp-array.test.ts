import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { buildSuffixArray } from '../src/suffix-array.js';
import { lcpOfSortedSuffixes, lcpPass, phiPass, plcpPass } from '../src/lcp-array.js';
import { allocateLcpJob, CTL_GO, shareLcpWork } from '../src/lcp-share.js';

function naiveLcp(d: Uint8Array, sa: Int32Array): number[] {
  const out: number[] = sa.length > 0 ? [0] : [];
  for (let i = 1; i < sa.length; i++) {
    let h = 0;
    while (sa[i] + h < d.length && sa[i - 1] + h < d.length && d[sa[i] + h] === d[sa[i - 1] + h]) h++;
    out.push(h);
  }
  return out;
}

/** Random bytes, small alphabets and periodic text with long repeats (long LCPs across range cuts). */
const texts = fc.oneof(
  fc.uint8Array({ maxLength: 400 }),
  fc.array(fc.constantFrom(0, 1), { maxLength: 400 }).map((a) => Uint8Array.from(a)),
  fc
    .tuple(fc.uint8Array({ minLength: 1, maxLength: 9 }), fc.integer({ min: 1, max: 400 }), fc.nat())
    .map(([period, n, noise]) => Uint8Array.from({ length: n }, (_, i) => (i === noise % n ? 7 : period[i % period.length]))),
);

/** Range boundaries 0 = c0 < c1 < ... < n from arbitrary cut points. */
function ranges(n: number, cuts: number[]): [number, number][] {
  const points = [...new Set([0, n, ...cuts.map((c) => c % (n + 1))])].sort((a, b) => a - b);
  return points.slice(1).map((to, i) => [points[i], to]);
}

describe('LCP passes', () => {
  it('equal a naive LCP on one thread', () => {
    fc.assert(
      fc.property(texts, (d) => {
        const sa = buildSuffixArray(d);
        expect(Array.from(lcpOfSortedSuffixes(d, sa))).toEqual(naiveLcp(d, sa));
      }),
      { numRuns: 300 },
    );
  });

  it('give the same array when each pass runs over arbitrary ranges in any order', () => {
    fc.assert(
      fc.property(texts, fc.array(fc.nat(), { maxLength: 6 }), fc.boolean(), (d, cuts, reverse) => {
        const n = d.length;
        const sa = buildSuffixArray(d);
        const parts = ranges(n, cuts);
        if (reverse) parts.reverse();
        const phi = new Int32Array(n);
        const lcp = new Int32Array(n);
        for (const [a, b] of parts) phiPass(sa, phi, a, b);
        for (const [a, b] of parts) plcpPass(d, phi, a, b);
        for (const [a, b] of parts) lcpPass(sa, phi, lcp, a, b);
        expect(Array.from(lcp)).toEqual(naiveLcp(d, sa));
      }),
      { numRuns: 300 },
    );
  });

  it('shareLcpWork alone claims every block of every pass', async () => {
    await fc.assert(
      fc.asyncProperty(texts, fc.integer({ min: 1, max: 64 }), async (d, block) => {
        const sa = buildSuffixArray(d);
        const job = allocateLcpJob(d, block);
        job.sa.set(sa);
        Atomics.store(job.ctl, CTL_GO, 1);
        await shareLcpWork(job, () => {
          throw new Error('nobody else holds a block');
        });
        expect(Array.from(job.lcp)).toEqual(naiveLcp(d, sa));
      }),
      { numRuns: 100 },
    );
  });
});
