/**
 * Suffix array construction by induced sorting (SA-IS, Nong, Zhang & Chan 2009)
 * in O(n); the LCP array is in lcp-array.ts.
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

/**
 * Suffix array of `data` (length n, no sentinel entry) in linear time: SA-IS. Written into `out`
 * (n entries, for example in shared memory) if given.
 */
export function buildSuffixArray(data: Uint8Array, out?: Int32Array): Int32Array {
  if (!(data instanceof Uint8Array)) throw new SuffixArrayError('buildSuffixArray expects a Uint8Array');
  const n = data.length;
  if (n > MAX_SUFFIX_ARRAY_INPUT) throw new SuffixArrayError(`input of ${n} bytes is too large for an Int32 suffix array`);
  if (out !== undefined && (!(out instanceof Int32Array) || out.length !== n)) throw new SuffixArrayError(`output array must be an Int32Array of ${n} entries`);
  const sa = out ?? new Int32Array(n);
  if (n === 0) return sa;
  sais(data, sa, n, 256);
  return sa;
}

/** Text at one recursion level: bytes at the top, Int32 names below it. */
type Text = Uint8Array | Int32Array;

/*
 * Induced sorting keeps no type array in its hot loops: an entry's sign says
 * whether its predecessor still has to be induced in the current pass, and the
 * type of the suffix before a newly placed one follows from two neighbouring
 * symbols (t[j-1] < t[j]: S, >: L, equal: same type as j). Two adjacent byte
 * reads replace a random read of a 4-byte-per-position type or code array.
 * Empty slots hold 0, which is never an LMS position and induces nothing.
 */

/**
 * Sort the n >= 1 suffixes of `t` (symbols in [0, k)) into `sa` (length >= n).
 */
function sais(t: Text, sa: Int32Array, n: number, k: number): void {
  if (n === 1) {
    sa[0] = 0;
    return;
  }
  const counts = new Int32Array(k);
  // The LMS positions in text order: the only place types are needed outside the induce loops.
  const lms = sa.slice(n - scanLms(t, n, sa, counts), n);
  const m = lms.length;
  const bkt = new Int32Array(k);

  // Stage 1: seed LMS positions at their bucket ends (any order) and induce;
  // this sorts the LMS substrings.
  sa.fill(0, 0, n);
  bucketEnds(counts, bkt, k);
  for (let j = m - 1; j >= 0; j--) {
    const p = lms[j];
    sa[--bkt[t[p]]] = p;
  }
  induceLmsOrder(t, sa, counts, bkt, n, k);

  // Gather the sorted LMS positions (the only entries left, as ~p) at the front.
  for (let i = 0, g = 0; i < n; i++) {
    const v = sa[i];
    if (v < 0) sa[g++] = ~v;
  }

  // Name the LMS substrings (equal substrings share a name). LMS positions are
  // at least two apart, so slot m + (p >> 1) is unique per position and < n:
  // it first holds the substring's length, then its name.
  sa.fill(-1, m, n);
  for (let j = 0; j < m; j++) {
    const p = lms[j];
    // The last substring runs into the sentinel: its length says so (p + len > n).
    sa[m + (p >> 1)] = (j + 1 < m ? lms[j + 1] : n) - p + 1;
  }
  let names = 0;
  let prev = 0;
  let prevLen = 0;
  for (let i = 0; i < m; i++) {
    const p = sa[i];
    const slot = m + (p >> 1);
    const len = sa[slot];
    if (len !== prevLen || p + len > n || prev + len > n || !sameSymbols(t, p, prev, len)) names++;
    prev = p;
    prevLen = len;
    sa[slot] = names - 1;
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
  // Map reduced suffix indices back to text positions.
  for (let i = 0; i < m; i++) reducedSa[i] = lms[reducedSa[i]];

  // Stage 3: seed the sorted LMS suffixes at their bucket ends, keeping their
  // order, then induce every other suffix from them.
  sa.fill(0, m, n);
  bucketEnds(counts, bkt, k);
  for (let i = m - 1; i >= 0; i--) {
    const p = sa[i];
    sa[i] = 0;
    sa[--bkt[t[p]]] = p;
  }
  induce(t, sa, counts, bkt, n, k);
}

/**
 * Classify suffixes right to left (position n-1 is L: the sentinel is smaller),
 * counting symbols on the way. The LMS positions (S-type with an L-type
 * predecessor) go to the end of `out` in text order; returns how many.
 */
function scanLms(t: Text, n: number, out: Int32Array, counts: Int32Array): number {
  let next = t[n - 1];
  counts[next]++;
  let nextS = false;
  let w = n;
  for (let i = n - 2; i >= 0; i--) {
    const c = t[i];
    counts[c]++;
    const s: boolean = c < next || (c === next && nextS);
    if (!s && nextS) out[--w] = i + 1;
    next = c;
    nextS = s;
  }
  return n - w;
}

/** Whether t[a..a+len) equals t[b..b+len). Equal symbols imply equal types when both end at an LMS position. */
function sameSymbols(t: Text, a: number, b: number, len: number): boolean {
  for (let d = 0; d < len; d++) if (t[a + d] !== t[b + d]) return false;
  return true;
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

/**
 * Induce L suffixes left-to-right, then S suffixes right-to-left, from the
 * seeded LMS ones. A negative entry ~j is a suffix whose predecessor belongs to
 * the other pass; each pass flips the signs it scans, so the L pass hands the
 * S pass exactly the suffixes with an S predecessor, and every entry ends up
 * non-negative. The current bucket's fill pointer lives in a local (`b`) and is
 * written back only when the symbol changes.
 */
function induce(t: Text, sa: Int32Array, counts: Int32Array, bkt: Int32Array, n: number, k: number): void {
  bucketStarts(counts, bkt, k);
  // The sentinel is the smallest suffix; its predecessor n-1 is L and comes first.
  let c1 = t[n - 1];
  let b = bkt[c1];
  sa[b++] = n > 1 && t[n - 2] < c1 ? ~(n - 1) : n - 1;
  for (let i = 0; i < n; i++) {
    let j = sa[i];
    sa[i] = ~j;
    if (j > 0) {
      j--;
      const c0 = t[j];
      if (c0 !== c1) {
        bkt[c1] = b;
        c1 = c0;
        b = bkt[c1];
      }
      sa[b++] = j > 0 && t[j - 1] < c1 ? ~j : j;
    }
  }
  bucketEnds(counts, bkt, k);
  c1 = 0;
  b = bkt[0];
  for (let i = n - 1; i >= 0; i--) {
    let j = sa[i];
    if (j > 0) {
      j--;
      const c0 = t[j];
      if (c0 !== c1) {
        bkt[c1] = b;
        c1 = c0;
        b = bkt[c1];
      }
      sa[--b] = j === 0 || t[j - 1] > c1 ? ~j : j;
    } else {
      sa[i] = ~j;
    }
  }
}

/**
 * Stage 1's induce: the same two passes, but it only has to leave the LMS
 * suffixes in order, so every scanned entry is cleared once it has induced its
 * predecessor. An S suffix with an L predecessor is LMS; the S pass marks it
 * ~j and never clears it, so afterwards the LMS positions are exactly the
 * negative entries, found without looking up any types.
 */
function induceLmsOrder(t: Text, sa: Int32Array, counts: Int32Array, bkt: Int32Array, n: number, k: number): void {
  bucketStarts(counts, bkt, k);
  let c1 = t[n - 1];
  let b = bkt[c1];
  sa[b++] = n > 1 && t[n - 2] < c1 ? ~(n - 1) : n - 1;
  for (let i = 0; i < n; i++) {
    let j = sa[i];
    if (j > 0) {
      sa[i] = 0;
      j--;
      const c0 = t[j];
      if (c0 !== c1) {
        bkt[c1] = b;
        c1 = c0;
        b = bkt[c1];
      }
      sa[b++] = j > 0 && t[j - 1] < c1 ? ~j : j;
    } else if (j < 0) {
      // Predecessor is S: the S pass induces it.
      sa[i] = ~j;
    }
  }
  bucketEnds(counts, bkt, k);
  c1 = 0;
  b = bkt[0];
  for (let i = n - 1; i >= 0; i--) {
    let j = sa[i];
    if (j > 0) {
      sa[i] = 0;
      j--;
      const c0 = t[j];
      if (c0 !== c1) {
        bkt[c1] = b;
        c1 = c0;
        b = bkt[c1];
      }
      // Position 0 has no predecessor and is never LMS: store it as empty.
      sa[--b] = j > 0 && t[j - 1] > c1 ? ~j : j;
    }
  }
}
