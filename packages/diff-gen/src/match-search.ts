/**
 * Longest-match search in a chunk window using the image suffix arrays, under
 * the window's position constraint: SA(old) candidates count only at p >= B,
 * SA(new) candidates only at p < B (their new bytes end at B; past it the
 * window holds old bytes, which we compare directly).
 *
 * A binary search finds where the target suffix sorts; the longest common
 * prefixes are next to that spot and shrink moving away from it. We walk
 * outward on both sides (always the side with the longer running LCP, read off
 * the LCP array) until a bounded number of candidates has been seen or no
 * remaining candidate can beat the best one. Among equally long matches the
 * one nearest the preferred position wins: that keeps seeks short and tends to
 * pick the copy whose surroundings also match.
 *
 * Supporting tables, each built once per image and cached by its suffix
 * array: the LCP array, a prefix bucket table (narrows the binary search to
 * suffixes sharing the first two or three bytes) and, for inplace chunks cut from the
 * new image, the inverse suffix array (locates the target's own suffix).
 */
import { bucketWidthFor, prefixBucketStarts } from './prefix-buckets.js';
import { lcpOf, type ChunkWindow, type SourceIndex } from './source-window.js';

/** Search result, reused across calls to keep the hot loop allocation-free. */
export interface SearchHit {
  len: number;
  pos: number;
}

export class WindowSearcher {
  private readonly oldData: Uint8Array;
  private readonly oldSa: Int32Array;
  private readonly oldLcp: Int32Array;
  private readonly newData: Uint8Array;
  private readonly newSa: Int32Array;
  private readonly newLcp: Int32Array;
  private readonly newRank: Int32Array | undefined;
  private readonly oldBuckets: Int32Array;
  private readonly newBuckets: Int32Array;
  private readonly boundary: number;
  private readonly length: number;
  private readonly searchOld: boolean;
  private readonly searchNew: boolean;
  // Two remembered exact matches (see exactLen) and the previous winner.
  private readonly memoFrom = Int32Array.of(-1, -1);
  private readonly memoPos = new Int32Array(2);
  private readonly memoLen = new Int32Array(2);
  private memoNext = 0;
  private lastFrom = -1;
  private lastPos = 0;
  private lastLen = 0;
  // Neighbourhood found by locate(): ranks either side of the target and their LCPs.
  private lo = 0;
  private hi = 0;
  private lcpLo = 0;
  private lcpHi = 0;

  /**
   * `window` must already be validated. `targetInNew`: the target is
   * newer.data at offset B (true for inplace chunks cut from the new image);
   * its own suffix then sits at a known rank in SA(new) and needs no search.
   */
  constructor(
    window: ChunkWindow,
    private readonly maxCandidates: number,
    private readonly maxCompare: number,
    targetInNew: boolean,
  ) {
    this.oldData = window.old.data;
    this.oldSa = window.old.sa;
    this.boundary = window.boundary;
    this.length = window.length;
    // Old bytes are visible only at [B, oldLen); new bytes only at [0, B).
    this.searchOld = this.oldData.length > this.boundary;
    this.oldLcp = this.searchOld ? lcpOf(window.old) : new Int32Array(0);
    this.oldBuckets = this.searchOld ? bucketsOf(window.old) : new Int32Array(0);
    this.searchNew = this.boundary > 0 && window.newer !== undefined;
    const newer = this.searchNew ? window.newer! : undefined;
    this.newData = newer ? newer.data : new Uint8Array(0);
    this.newSa = newer ? newer.sa : new Int32Array(0);
    this.newLcp = newer ? lcpOf(newer) : new Int32Array(0);
    this.newRank = newer && targetInNew ? rankOf(newer) : undefined;
    this.newBuckets = newer && !targetInNew ? bucketsOf(newer) : new Int32Array(0);
  }

  /** Exact match length of target[from..end) against the window at p (0 if p is outside it). */
  matchAt(target: Uint8Array, from: number, end: number, p: number): number {
    if (p < 0 || p >= this.length) return 0;
    const B = this.boundary;
    let k = 0;
    const max = Math.min(end - from, this.length - p);
    if (p < B) {
      const nd = this.newData;
      const lim = Math.min(max, B - p);
      while (k < lim && nd[p + k] === target[from + k]) k++;
      if (k < lim) return k;
    }
    const od = this.oldData;
    while (k < max && od[p + k] === target[from + k]) k++;
    return k;
  }

  /**
   * Exact match length at p, remembered per diagonal (p - from): the matcher
   * often asks again one byte further along the same diagonal, and re-measuring
   * a long match each time would make such stretches quadratic.
   */
  private exactLen(target: Uint8Array, from: number, end: number, p: number): number {
    for (let e = 0; e < 2; e++) {
      const f0 = this.memoFrom[e];
      const l0 = this.memoLen[e];
      if (p - from === this.memoPos[e] - f0 && from >= f0 && (from < f0 + l0 || from === f0)) return l0 - (from - f0);
    }
    const len = this.matchAt(target, from, end, p);
    const e = this.memoNext;
    this.memoNext = e ^ 1;
    this.memoFrom[e] = from;
    this.memoPos[e] = p;
    this.memoLen[e] = len;
    return len;
  }

  /**
   * Longest usable match of target[from..end) in the window, nearest to `pref`
   * among equals. Sets hit.len (0 if none) and hit.pos.
   */
  find(target: Uint8Array, from: number, end: number, pref: number, hit: SearchHit): void {
    // The current alignment competes too; being at distance 0 it wins every tie.
    hit.len = this.exactLen(target, from, end, pref);
    hit.pos = pref;
    // So does the previous winner's diagonal, if we are still inside its match.
    const lastFrom = this.lastFrom;
    if (from > lastFrom && from < lastFrom + this.lastLen) {
      const len = this.lastLen - (from - lastFrom);
      if (len > hit.len) {
        hit.len = len;
        hit.pos = this.lastPos + (from - lastFrom);
      }
    }
    // Suffix comparisons stop at maxCompare bytes so that a search costs
    // O(maxCompare + log n) even when the target occurs in full (SA(new) holds
    // the target itself); a candidate that reaches the cap is measured exactly
    // below. A known match of at least that length cannot be beaten, so skip.
    const tl = Math.min(end - from, this.maxCompare);
    if (hit.len < tl) {
      const before = hit.len;
      if (this.searchOld) {
        this.locate(this.oldData, this.oldSa, this.oldBuckets, target, from, tl);
        this.walk(this.oldSa, this.oldLcp, false, target, from, end, tl, pref, hit);
      }
      if (this.searchNew) {
        if (this.newRank) {
          // Our own suffix: everything around it is ordered by its LCP with us.
          const r = this.newRank[this.boundary + from];
          const n = this.newSa.length;
          this.lo = r - 1;
          this.lcpLo = Math.min(this.newLcp[r], tl);
          this.hi = r + 1;
          this.lcpHi = r + 1 < n ? Math.min(this.newLcp[r + 1], tl) : 0;
        } else {
          this.locate(this.newData, this.newSa, this.newBuckets, target, from, tl);
        }
        this.walk(this.newSa, this.newLcp, true, target, from, end, tl, pref, hit);
      }
      if (hit.len === tl && hit.len > before) hit.len = this.exactLen(target, from, end, hit.pos);
    }
    this.lastFrom = from;
    this.lastPos = hit.pos;
    this.lastLen = hit.len;
  }

  /**
   * Binary search: suffix(sa[lo]) < target[from..from+tl) <= suffix(sa[hi]), with their LCPs.
   * The prefix bucket table narrows the range first, saving most of the steps. The result is the
   * same for either table width: a bound still at the two-byte bucket's edge reports LCP 0 (a lower
   * bound), any other bound its exact LCP, so three-byte buckets only start the search closer.
   */
  private locate(data: Uint8Array, sa: Int32Array, buckets: Int32Array, target: Uint8Array, from: number, tl: number): void {
    const n = data.length;
    let lo = -1;
    let hi = n;
    let lcpLo = 0;
    let lcpHi = 0;
    if (tl >= 2) {
      const key = (target[from] << 8) | target[from + 1];
      if (buckets.length === (1 << 16) + 1) {
        lo = buckets[key] - 1;
        hi = buckets[key + 1];
      } else {
        lo = buckets[key << 8] - 1;
        hi = buckets[(key + 1) << 8];
        if (tl >= 3) {
          const key3 = (key << 8) | target[from + 2];
          const lo3 = buckets[key3] - 1;
          const hi3 = buckets[key3 + 1];
          if (lo3 > lo) {
            lo = lo3;
            lcpLo = commonPrefix(data, sa[lo], target, from, tl);
          }
          if (hi3 < hi) {
            hi = hi3;
            lcpHi = commonPrefix(data, sa[hi], target, from, tl);
          }
        }
      }
    }
    while (hi - lo > 1) {
      const mid = (lo + hi) >>> 1;
      const p = sa[mid];
      // Everything between lo and hi shares min(lcpLo, lcpHi) bytes with the target.
      let k = lcpLo < lcpHi ? lcpLo : lcpHi;
      const lim = tl < n - p ? tl : n - p;
      while (k < lim && data[p + k] === target[from + k]) k++;
      if (k === tl) {
        hi = mid;
        lcpHi = k;
      } else if (k === n - p || data[p + k] < target[from + k]) {
        lo = mid;
        lcpLo = k;
      } else {
        hi = mid;
        lcpHi = k;
      }
    }
    this.lo = lo;
    this.hi = hi;
    this.lcpLo = lcpLo;
    this.lcpHi = lcpHi;
  }

  /** Visit candidates outward from the located spot, longest running LCP first. */
  private walk(
    sa: Int32Array,
    lcp: Int32Array,
    isNew: boolean,
    target: Uint8Array,
    from: number,
    end: number,
    tl: number,
    pref: number,
    hit: SearchHit,
  ): void {
    const n = sa.length;
    const B = this.boundary;
    let li = this.lo;
    let lrun = this.lcpLo;
    let ri = this.hi;
    let rrun = this.lcpHi;
    for (let budget = this.maxCandidates; budget > 0; budget--) {
      let cand: number;
      let run: number;
      if (li >= 0 && (ri >= n || lrun >= rrun)) {
        cand = sa[li];
        run = lrun;
        if (li > 0 && lcp[li] < lrun) lrun = lcp[li];
        li--;
      } else if (ri < n) {
        cand = sa[ri];
        run = rrun;
        ri++;
        if (ri < n && lcp[ri] < rrun) rrun = lcp[ri];
      } else {
        return;
      }
      // Runs only shrink from here on: stop once nothing can win.
      if (run === 0 || run < hit.len || (run === hit.len && hit.pos === pref)) return;

      let len: number;
      if (!isNew) {
        if (cand < B) continue; // overwritten by new bytes in this window
        len = run;
      } else {
        if (cand >= B) continue; // not restored yet
        // Past B the window holds old bytes: compare those directly.
        len = run < B - cand ? run : Math.min(this.matchAt(target, from, end, cand), tl);
      }
      if (len > hit.len || (len === hit.len && Math.abs(cand - pref) < Math.abs(hit.pos - pref))) {
        hit.len = len;
        hit.pos = cand;
      }
    }
  }
}

// Prefix bucket tables of suffix arrays, built on demand like the LCP arrays.
const bucketCache = new WeakMap<Int32Array, Int32Array>();

/** The index's prefix bucket table (width bucketWidthFor(n)), computing and caching it if not supplied. */
function bucketsOf(index: SourceIndex): Int32Array {
  if (index.buckets) return index.buckets;
  let starts = bucketCache.get(index.sa);
  if (!starts) {
    starts = prefixBucketStarts(index.data, bucketWidthFor(index.data.length));
    bucketCache.set(index.sa, starts);
  }
  return starts;
}

/** Common prefix length of suffix p and target[from..from+tl). */
function commonPrefix(data: Uint8Array, p: number, target: Uint8Array, from: number, tl: number): number {
  const lim = tl < data.length - p ? tl : data.length - p;
  let k = 0;
  while (k < lim && data[p + k] === target[from + k]) k++;
  return k;
}

// Inverse suffix arrays, built on demand and kept as long as their suffix array lives.
const rankCache = new WeakMap<Int32Array, Int32Array>();

function rankOf(index: SourceIndex): Int32Array {
  let rank = rankCache.get(index.sa);
  if (!rank) {
    const sa = index.sa;
    rank = new Int32Array(sa.length);
    for (let i = 0; i < sa.length; i++) rank[sa[i]] = i;
    rankCache.set(index.sa, rank);
  }
  return rank;
}
