/**
 * Prefix bucket tables of a suffix array: starts[k] = first rank whose suffix
 * begins with the `width` bytes k (big-endian), so the suffixes starting with k
 * occupy ranks [starts[k], starts[k + 1]). A suffix shorter than `width` counts
 * as padded with zero bytes, which is also where it sorts (first in its bucket).
 * Counting bytes gives the table without reading the suffix array, so it can be
 * built while the suffix array is still being sorted.
 */

/** Two bytes for small images; three (a 64 MiB table) once that saves the matcher more than it costs. */
export function bucketWidthFor(n: number): 2 | 3 {
  return n >= 1 << 22 ? 3 : 2;
}

/** Bucket starts for `width`-byte prefixes, into `out` (length 256^width + 1, zeroed) if given. */
export function prefixBucketStarts(data: Uint8Array, width: 2 | 3, out?: Int32Array): Int32Array {
  const n = data.length;
  const size = width === 2 ? 1 << 16 : 1 << 24;
  const starts = out ?? new Int32Array(size + 1);
  // Count into starts[key + 1]; the last width-1 positions are padded with zeros.
  const full = n - (width - 1);
  if (width === 2) {
    for (let p = 0; p < full; p++) starts[((data[p] << 8) | data[p + 1]) + 1]++;
  } else {
    for (let p = 0; p < full; p++) starts[((data[p] << 16) | (data[p + 1] << 8) | data[p + 2]) + 1]++;
  }
  for (let p = Math.max(0, full); p < n; p++) {
    let key = 0;
    for (let j = 0; j < width; j++) key = (key << 8) | (p + j < n ? data[p + j] : 0);
    starts[key + 1]++;
  }
  for (let k = 1; k <= size; k++) starts[k] += starts[k - 1];
  return starts;
}
