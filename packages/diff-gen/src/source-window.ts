/**
 * The source a chunk is restored from. In `ab` mode that is the whole old image;
 * in `inplace` mode chunk i sees new[0:B] ++ old[B:] with B = i*S, because the
 * chunks before it have already overwritten the start of the partition.
 */
import { buildSuffixArray } from './suffix-array.js';
import { buildLcpArray, lcpOfSortedSuffixes } from './lcp-array.js';

export class MatcherError extends Error {
  override name = 'MatcherError';
}

/** An image and its suffix array (`lcp` is filled in on first use when absent). */
export interface SourceIndex {
  data: Uint8Array;
  sa: Int32Array;
  /** lcp[i] = common prefix of the suffixes at sa[i-1] and sa[i]; see buildLcpArray. */
  lcp?: Int32Array;
  /** Prefix bucket starts of width bucketWidthFor(data.length); see prefix-buckets.ts. */
  buckets?: Int32Array;
}

export interface ChunkWindow {
  /** Old image + SA(old). */
  old: SourceIndex;
  /**
   * New image + SA(new), to reference the restored bytes below B. Without it those bytes are part of
   * the window but never referenced (matches come from OLD alone).
   */
  newer?: SourceIndex;
  /** B: window[p] = p < B ? newer.data[p] : old.data[p]. */
  boundary: number;
  /** W = max(B, old.data.length). */
  length: number;
}

/** An index with its LCP array built (the bucket table may still come on first use). */
export type BuiltIndex = SourceIndex & { lcp: Int32Array };

/** Sort an image once so that every chunk's window can search it. */
export function indexImage(data: Uint8Array): BuiltIndex {
  const sa = buildSuffixArray(data);
  // Our own suffix array: no need to check it is a permutation.
  return { data, sa, lcp: lcpOfSortedSuffixes(data, sa) };
}

/** Byte p of the window; throws outside [0, W). */
export function windowByte(window: ChunkWindow, p: number): number {
  if (!Number.isInteger(p) || p < 0 || p >= window.length) {
    throw new MatcherError(`window position ${p} is outside [0, ${window.length})`);
  }
  if (p < window.boundary) {
    if (window.newer === undefined) throw new MatcherError(`window position ${p} is below the boundary and no new image was given`);
    return window.newer.data[p];
  }
  return window.old.data[p];
}

// LCP arrays computed on demand, kept as long as their suffix array lives.
const lcpCache = new WeakMap<Int32Array, Int32Array>();

/** The LCP array of an index, computing and caching it if the caller did not supply one. */
export function lcpOf(index: SourceIndex): Int32Array {
  if (index.lcp) return index.lcp;
  let lcp = lcpCache.get(index.sa);
  if (!lcp) {
    lcp = buildLcpArray(index.data, index.sa);
    lcpCache.set(index.sa, lcp);
  }
  return lcp;
}

function checkIndex(index: SourceIndex | undefined, what: string): void {
  if (!index || !(index.data instanceof Uint8Array) || !(index.sa instanceof Int32Array)) {
    throw new MatcherError(`${what} must be { data: Uint8Array, sa: Int32Array }`);
  }
  if (index.sa.length !== index.data.length) {
    throw new MatcherError(`${what}: suffix array has ${index.sa.length} entries for ${index.data.length} bytes`);
  }
  if (index.lcp !== undefined && (!(index.lcp instanceof Int32Array) || index.lcp.length !== index.data.length)) {
    throw new MatcherError(`${what}: lcp array must be an Int32Array of ${index.data.length} entries`);
  }
  // Either width is valid for any size (bucketWidthFor only picks the faster one); the search tells
  // them apart by length.
  if (index.buckets !== undefined && (!(index.buckets instanceof Int32Array) || (index.buckets.length !== (1 << 16) + 1 && index.buckets.length !== (1 << 24) + 1)))
    throw new MatcherError(`${what}: prefix buckets must be an Int32Array of 2^16+1 or 2^24+1 entries`);
}

/** Reject windows whose fields disagree, before any position is trusted. */
export function validateWindow(window: ChunkWindow): void {
  checkIndex(window.old, 'window.old');
  const B = window.boundary;
  if (!Number.isSafeInteger(B) || B < 0) throw new MatcherError(`window boundary ${B} must be a non-negative integer`);
  if (B > 0 && window.newer !== undefined) {
    checkIndex(window.newer, 'window.newer');
    if (window.newer!.data.length < B) {
      throw new MatcherError(`window boundary ${B} is past the end of the new image (${window.newer!.data.length} bytes)`);
    }
  }
  const expected = Math.max(B, window.old.data.length);
  if (window.length !== expected) {
    throw new MatcherError(`window length ${window.length} must be max(boundary, old length) = ${expected}`);
  }
}
