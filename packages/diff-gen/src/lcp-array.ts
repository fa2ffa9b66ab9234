/**
 * LCP array of a suffix array: lcp[i] = length of the longest common prefix of
 * the suffixes at sa[i-1] and sa[i]; lcp[0] = 0. Linear time via the permuted
 * LCP array (Kärkkäinen, Manzini & Puglisi 2009): computing it in text order
 * keeps the comparisons sequential, which is kinder to the cache than Kasai's
 * rank order.
 *
 * Three passes, each over an index range so that two threads can share them
 * (lcp-share.ts); every pass must finish before the next one starts:
 *   1. phiPass:  phi[sa[i]] = sa[i-1], the suffix sorted just before (-1: none);
 *   2. plcpPass: phi[p] is replaced in place by plcp[p], the LCP of p and phi[p];
 *   3. lcpPass:  lcp[i] = plcp[sa[i]].
 */
import { SuffixArrayError } from './suffix-array.js';

/** LCP array of any claimed suffix array of `data`: checks that `sa` is a permutation first. */
export function buildLcpArray(data: Uint8Array, sa: Int32Array): Int32Array {
  const n = data.length;
  if (sa.length !== n) throw new SuffixArrayError(`suffix array has ${sa.length} entries for ${n} bytes`);
  const seen = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const p = sa[i];
    if (p < 0 || p >= n || seen[p] === 1) throw new SuffixArrayError(`suffix array entry ${i} = ${p} is out of range or repeated`);
    seen[p] = 1;
  }
  return lcpOfSortedSuffixes(data, sa);
}

/** LCP array of a suffix array known to be valid (built by buildSuffixArray), on this thread. */
export function lcpOfSortedSuffixes(data: Uint8Array, sa: Int32Array): Int32Array {
  const n = data.length;
  const phi = new Int32Array(n);
  const lcp = new Int32Array(n);
  phiPass(sa, phi, 0, n);
  plcpPass(data, phi, 0, n);
  lcpPass(sa, phi, lcp, 0, n);
  return lcp;
}

/** Pass 1 over ranks [from, to). */
export function phiPass(sa: Int32Array, phi: Int32Array, from: number, to: number): void {
  let prev = from > 0 ? sa[from - 1] : -1;
  for (let i = from; i < to; i++) {
    const p = sa[i];
    phi[p] = prev;
    prev = p;
  }
}

/**
 * Pass 2 over text positions [from, to). plcp[p+1] >= plcp[p] - 1, so h drops
 * by at most one per position: O(n) in total. A range starts from h = 0, which
 * is a valid lower bound and costs at most one extra comparison run.
 */
export function plcpPass(data: Uint8Array, phi: Int32Array, from: number, to: number): void {
  const n = data.length;
  let h = 0;
  for (let p = from; p < to; p++) {
    const q = phi[p];
    if (q < 0) {
      h = 0;
      phi[p] = 0;
      continue;
    }
    while (p + h < n && q + h < n && data[p + h] === data[q + h]) h++;
    phi[p] = h;
    if (h > 0) h--;
  }
}

/** Pass 3 over ranks [from, to). */
export function lcpPass(sa: Int32Array, plcp: Int32Array, lcp: Int32Array, from: number, to: number): void {
  for (let i = from; i < to; i++) lcp[i] = plcp[sa[i]];
}
