/**
 * Suffix array construction by induced sorting (SA-IS, Nong, Zhang & Chan 2009)
 * and the matching LCP array (Kasai et al. 2001). Both run in O(n).
 *
 * Conventions: the text has an implicit sentinel at position n that is smaller
 * than every symbol; it is never stored in the result, so `sa` has exactly n
 * entries and `sa[i]` is the start of the i-th smallest suffix.
 */

export class SuffixArrayError extends Error {
  override name = 'SuffixArrayError';
}

/** Largest input we accept: positions and the recursion's name slots must fit an Int32. */
export const MAX_SUFFIX_ARRAY_INPUT = 0x7fff_fff0;

/** Suffix array of `data` (length n, no sentinel entry) in linear time: SA-IS. */
export function buildSuffixArray(data: Uint8Array): Int32Array {
  if (!(data instanceof Uint8Array)) throw new SuffixArrayError('buildSuffixArray expects a Uint8Array');
  const n = data.length;
  if (n > MAX_SUFFIX_ARRAY_INPUT) throw new SuffixArrayError(`input of ${n} bytes is too large for an Int32 suffix array`);
  const sa = new Int32Array(n);
  if (n === 0) return sa;
  sais(data, sa, n, 256);
  return sa;
}

/**
 * LCP array for `sa`: lcp[i] = length of the longest common prefix of the
 * suffixes at sa[i-1] and sa[i]; lcp[0] = 0. Linear time via the permuted LCP
 * array (Kärkkäinen, Manzini & Puglisi): computing it in text order keeps the
 * comparisons sequential, which is kinder to the cache than Kasai's rank order.
 */
export function buildLcpArray(data: Uint8Array, sa: Int32Array): Int32Array {
  const n = data.length;
  if (sa.length !== n) throw new SuffixArrayError(`suffix array has ${sa.length} entries for ${n} bytes`);
  // phi[p] = the suffix sorted just before p (-1 for the first), then reused
  // in place for plcp[p] = LCP of p with that suffix.
  const phi = new Int32Array(n);
  const seen = new Uint8Array(n);
  let prev = -1;
  for (let i = 0; i < n; i++) {
    const p = sa[i];
    if (p < 0 || p >= n || seen[p] === 1) throw new SuffixArrayError(`suffix array entry ${i} = ${p} is out of range or repeated`);
    seen[p] = 1;
    phi[p] = prev;
    prev = p;
  }
  // plcp[p+1] >= plcp[p] - 1, so h drops by at most one per position: O(n) in total.
  let h = 0;
  for (let p = 0; p < n; p++) {
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
  const lcp = new Int32Array(n);
  for (let i = 0; i < n; i++) lcp[i] = phi[sa[i]];
  return lcp;
}

/** Text at one recursion level: bytes at the top, Int32 names below it. */
type Text = Uint8Array | Int32Array;

/**
 * Sort the n >= 1 suffixes of `t` (symbols in [0, k)) into `sa` (length >= n).
 * The hot loops read `code[i] = 2 * symbol + (1 if S-type)`, one random
 * access instead of two (symbol and type) per induced suffix.
 */
function sais(t: Text, sa: Int32Array, n: number, k: number): void {
  if (n === 1) {
    sa[0] = 0;
    return;
  }
  // Suffix types: S (smaller than its successor) or L. The sentinel makes
  // position n-1 an L suffix.
  const code = new Int32Array(n);
  code[n - 1] = t[n - 1] << 1;
  for (let i = n - 2; i >= 0; i--) {
    const a = t[i];
    const b = t[i + 1];
    code[i] = (a << 1) | (a < b || (a === b && (code[i + 1] & 1) === 1) ? 1 : 0);
  }
  const counts = new Int32Array(k);
  for (let i = 0; i < n; i++) counts[t[i]]++;
  const bkt = new Int32Array(k);

  // Stage 1: seed LMS positions at their bucket ends (any order) and induce;
  // this sorts the LMS substrings.
  sa.fill(-1, 0, n);
  bucketEnds(counts, bkt, k);
  for (let i = n - 1; i >= 1; i--) {
    const c = code[i];
    if ((c & 1) === 1 && (code[i - 1] & 1) === 0) sa[--bkt[c >> 1]] = i;
  }
  induce(code, sa, counts, bkt, n, k);

  // Gather the sorted LMS positions at the front.
  let m = 0;
  for (let i = 0; i < n; i++) {
    const p = sa[i];
    if (p > 0 && (code[p] & 1) === 1 && (code[p - 1] & 1) === 0) sa[m++] = p;
  }

  // Name the LMS substrings (equal substrings share a name). LMS positions are
  // at least two apart, so slot m + (p >> 1) is unique per position and < n.
  sa.fill(-1, m, n);
  let names = 0;
  let prev = -1;
  for (let i = 0; i < m; i++) {
    const p = sa[i];
    if (prev < 0 || !lmsSubstringsEqual(code, n, p, prev)) names++;
    prev = p;
    sa[m + (p >> 1)] = names - 1;
  }
  // Pack the names, in text order, into the last m slots: the reduced string.
  for (let i = n - 1, j = n - 1; i >= m; i--) {
    const v = sa[i];
    if (v >= 0) sa[j--] = v;
  }
  const reduced = sa.subarray(n - m, n);
  const reducedSa = sa.subarray(0, m);

  // Stage 2: order the LMS suffixes, recursing while names repeat.
  if (names < m) {
    sais(reduced, reducedSa, m, names);
  } else {
    for (let i = 0; i < m; i++) reducedSa[reduced[i]] = i;
  }
  // Map reduced suffix indices back to text positions (reuse the reduced slots).
  for (let i = n - 1, j = m; i >= 1; i--) {
    if ((code[i] & 1) === 1 && (code[i - 1] & 1) === 0) reduced[--j] = i;
  }
  for (let i = 0; i < m; i++) reducedSa[i] = reduced[reducedSa[i]];

  // Stage 3: seed the sorted LMS suffixes at their bucket ends, keeping their
  // order, then induce every other suffix from them.
  sa.fill(-1, m, n);
  bucketEnds(counts, bkt, k);
  for (let i = m - 1; i >= 0; i--) {
    const p = sa[i];
    sa[i] = -1;
    sa[--bkt[code[p] >> 1]] = p;
  }
  induce(code, sa, counts, bkt, n, k);
}

function bucketStarts(counts: Int32Array, bkt: Int32Array, k: number): void {
  let sum = 0;
  for (let c = 0; c < k; c++) {
    bkt[c] = sum;
    sum += counts[c];
  }
}

function bucketEnds(counts: Int32Array, bkt: Int32Array, k: number): void {
  let sum = 0;
  for (let c = 0; c < k; c++) {
    sum += counts[c];
    bkt[c] = sum;
  }
}

/** Induce L suffixes left-to-right, then S suffixes right-to-left, from the seeded LMS ones. */
function induce(code: Int32Array, sa: Int32Array, counts: Int32Array, bkt: Int32Array, n: number, k: number): void {
  bucketStarts(counts, bkt, k);
  // The sentinel is the smallest suffix; its predecessor n-1 is L and comes first.
  sa[bkt[code[n - 1] >> 1]++] = n - 1;
  for (let i = 0; i < n; i++) {
    const j = sa[i] - 1;
    if (j >= 0) {
      const c = code[j];
      if ((c & 1) === 0) sa[bkt[c >> 1]++] = j;
    }
  }
  bucketEnds(counts, bkt, k);
  for (let i = n - 1; i >= 0; i--) {
    const j = sa[i] - 1;
    if (j >= 0) {
      const c = code[j];
      if ((c & 1) === 1) sa[--bkt[c >> 1]] = j;
    }
  }
}

/** Whether the LMS substrings at a and b (each up to and including the next LMS position) are identical. */
function lmsSubstringsEqual(code: Int32Array, n: number, a: number, b: number): boolean {
  for (let d = 0; ; d++) {
    const pa = a + d;
    const pb = b + d;
    // The substring reaching the sentinel is unique.
    if (pa === n || pb === n) return false;
    // Equal codes: same symbol and same type.
    const c = code[pa];
    if (c !== code[pb]) return false;
    // Types agree so far, so both substrings end here together.
    if (d > 0 && (c & 1) === 1 && (code[pa - 1] & 1) === 0) return true;
  }
}
