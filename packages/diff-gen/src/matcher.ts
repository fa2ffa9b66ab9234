/**
 * bsdiff-style copy/diff/extra structure for one chunk of the new image
 * against its source window (Percival, "Naive differences of executable code").
 *
 * We walk the target looking for exact matches that beat the current alignment
 * (srcPos - targetPos) by a margin; each accepted match closes the previous
 * alignment: the previous match is extended forward and the new one backward
 * while matching bytes clearly outweigh mismatching ones (these become "diff"
 * bytes that are mostly zero), the overlap of the two extensions is split where
 * it scores best, and what neither covers becomes literal "extra" bytes. The
 * result is long approximate copies, which LZMA compresses far better than
 * short exact matches.
 *
 * Departures from bsdiff, tuned on firmware with the package's interleaved,
 * per-chunk LZMA stream (bench/src/matcher-size.ts):
 * - among equally long matches the one nearest the current alignment wins;
 * - a nearby switch needs a smaller margin (5 rather than 8 bytes);
 * - a far jump (seek >= farDistance) must win by a larger margin, and far
 *   copies with few matching bytes are turned back into literals afterwards,
 *   because each op costs several poorly compressible bytes (lengths, seek);
 * - extensions accept somewhat more mismatches (mismatchCost < 1): diff bytes
 *   against similar code compress better than the same bytes as literals.
 */
import { WindowSearcher, type SearchHit } from './match-search.js';
import { MatcherError, validateWindow, type ChunkWindow } from './source-window.js';

export { indexImage, lcpOf, MatcherError, validateWindow, windowByte } from './source-window.js';
export type { ChunkWindow, SourceIndex } from './source-window.js';

/** One step: out += (window[srcPos .. srcPos+copyLen) + diff bytes) then extraLen literal bytes of target. */
export interface Op {
  copyLen: number;
  srcPos: number;
  extraLen: number;
}

export interface MatchOptions {
  /** Suffix-array candidates examined per search (default 32). */
  maxCandidates?: number;
  /** Exact matches shorter than this are ignored (default 0, as bsdiff). */
  minMatch?: number;
  /**
   * How many more matching bytes a new match must have than the current
   * alignment explains before we switch to it (default 5; bsdiff uses 8).
   */
  switchMargin?: number;
  /** The same margin for a match at least farDistance away from the current alignment (default 16). */
  farSwitchMargin?: number;
  /** Seek distance from which a jump counts as far (default 1024). */
  farDistance?: number;
  /**
   * A copy reached by a far seek is kept only if at least this many of its
   * bytes match exactly; otherwise its bytes become literals (default 24; 0 keeps all).
   */
  minFarCopy?: number;
  /**
   * Extensions keep the byte range where matches - mismatchCost * mismatches
   * is highest (default 0.5; bsdiff's "more than half match" is 1).
   */
  mismatchCost?: number;
  /**
   * Suffix comparisons stop after this many bytes (default 1024); longer
   * matches are still measured exactly, this only bounds the search cost.
   */
  maxCompare?: number;
  /**
   * Source position the applier is at before the first op, and the initial
   * alignment guess for target byte 0. The first op always starts here (it may
   * be an empty op that only carries the seek to the first real copy).
   * Default: min(B, W), the chunk's own offset in inplace mode; ab callers
   * should pass the chunk offset clamped to W.
   */
  startPos?: number;
}

const DEFAULTS = {
  maxCandidates: 32,
  minMatch: 0,
  switchMargin: 5,
  farSwitchMargin: 16,
  farDistance: 1024,
  minFarCopy: 24,
  mismatchCost: 0.5,
  maxCompare: 1024,
} as const;

function intOption(value: number | undefined, fallback: number, min: number, max: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new MatcherError(`option ${name} = ${value} must be an integer in [${min}, ${max}]`);
  }
  return value;
}

interface Tuning {
  maxCandidates: number;
  minMatch: number;
  switchMargin: number;
  farSwitchMargin: number;
  farDistance: number;
  minFarCopy: number;
  mismatchCost: number;
  maxCompare: number;
  startPos: number;
}

function readOptions(o: MatchOptions, window: ChunkWindow): Tuning {
  const BIG = 1 << 30;
  const mismatchCost = o.mismatchCost ?? DEFAULTS.mismatchCost;
  if (typeof mismatchCost !== 'number' || !Number.isFinite(mismatchCost) || mismatchCost < 0 || mismatchCost > 1000) {
    throw new MatcherError(`option mismatchCost = ${mismatchCost} must be a number in [0, 1000]`);
  }
  return {
    maxCandidates: intOption(o.maxCandidates, DEFAULTS.maxCandidates, 1, 1 << 20, 'maxCandidates'),
    minMatch: intOption(o.minMatch, DEFAULTS.minMatch, 0, BIG, 'minMatch'),
    switchMargin: intOption(o.switchMargin, DEFAULTS.switchMargin, 0, BIG, 'switchMargin'),
    farSwitchMargin: intOption(o.farSwitchMargin, DEFAULTS.farSwitchMargin, 0, BIG, 'farSwitchMargin'),
    farDistance: intOption(o.farDistance, DEFAULTS.farDistance, 0, Number.MAX_SAFE_INTEGER, 'farDistance'),
    minFarCopy: intOption(o.minFarCopy, DEFAULTS.minFarCopy, 0, BIG, 'minFarCopy'),
    mismatchCost,
    maxCompare: intOption(o.maxCompare, DEFAULTS.maxCompare, 1, BIG, 'maxCompare'),
    startPos: intOption(o.startPos, Math.min(window.boundary, window.length), 0, window.length, 'startPos'),
  };
}

/**
 * Ops that rebuild `target` exactly when applied in order against `window`.
 * Sum of copyLen + extraLen == target.length; every copy lies inside [0, W).
 * The first op starts at options.startPos; only it may have copyLen 0.
 */
export function matchChunk(target: Uint8Array, window: ChunkWindow, options: MatchOptions = {}): Op[] {
  if (!(target instanceof Uint8Array)) throw new MatcherError('target must be a Uint8Array');
  validateWindow(window);
  const o = readOptions(options, window);
  const T = target.length;
  if (T === 0) return [];
  if (window.length === 0) return [{ copyLen: 0, srcPos: 0, extraLen: T }];
  const ops = findOps(target, window, o);
  return o.minFarCopy > 0 ? dropFarShortCopies(ops, target, window, o) : ops;
}

const NO_BYTES = new Uint8Array(0);

function findOps(target: Uint8Array, window: ChunkWindow, o: Tuning): Op[] {
  const T = target.length;
  const W = window.length;
  const B = window.boundary;
  const od = window.old.data;
  // Without the new image, bytes below B are never referenced: reads there find no match.
  const nd = window.newer?.data ?? NO_BYTES;
  const low = window.newer === undefined ? B : 0;
  const searcher = new WindowSearcher(window, o.maxCandidates, o.maxCompare, isSliceOfNew(target, window));
  const hit: SearchHit = { len: 0, pos: 0 };
  const ops: Op[] = [];
  // Extension score per byte: matches +1, mismatches -mismatchCost, i.e.
  // (1 + c) * matches - c * length.
  const c = o.mismatchCost;
  const c1 = c + 1;

  let scan = 0; // target position being searched
  let len = 0; // length of the last match found
  let pos = 0; // its window position
  let lastScan = 0; // target start of the match being extended forward
  let lastPos = o.startPos; // its window position
  let lastOffset = o.startPos; // current alignment: window pos - target pos

  while (scan < T) {
    // How many bytes of the candidate match the current alignment already gets right.
    let oldScore = 0;
    scan += len;
    let scored = scan;
    for (; scan < T; scan++) {
      searcher.find(target, scan, T, scan + lastOffset, hit);
      len = hit.len < o.minMatch ? 0 : hit.len;
      pos = hit.pos;
      for (; scored < scan + len; scored++) {
        const q = scored + lastOffset;
        if (q >= 0 && q < W && (q < B ? nd[q] : od[q]) === target[scored]) oldScore++;
      }
      // Same bytes as the alignment gives anyway: skip ahead without a new op.
      if (len === oldScore && len !== 0) break;
      // Clearly better than staying: switch.
      const far = Math.abs(pos - scan - lastOffset) >= o.farDistance;
      if (len > oldScore + (far ? o.farSwitchMargin : o.switchMargin)) break;
      const q = scan + lastOffset;
      if (q >= 0 && q < W && (q < B ? nd[q] : od[q]) === target[scan]) oldScore--;
    }
    if (len === oldScore && scan !== T) continue;

    // Extend the previous match forward over [lastScan, scan).
    let lenf = 0;
    {
      let s = 0;
      let best = 0;
      const lim = Math.min(scan - lastScan, W - lastPos);
      for (let i = 0; i < lim; ) {
        const q = lastPos + i;
        if ((q < B ? nd[q] : od[q]) === target[lastScan + i]) s++;
        i++;
        const score = c1 * s - c * i;
        if (score > best) {
          best = score;
          lenf = i;
        }
      }
    }
    // Extend the new match backward the same way.
    let lenb = 0;
    if (scan < T) {
      let s = 0;
      let best = 0;
      const lim = Math.min(scan - lastScan, pos - low);
      for (let i = 1; i <= lim; i++) {
        const q = pos - i;
        if ((q < B ? nd[q] : od[q]) === target[scan - i]) s++;
        const score = c1 * s - c * i;
        if (score > best) {
          best = score;
          lenb = i;
        }
      }
    }
    // If the extensions overlap, split the overlap where the forward side
    // matches best relative to the backward side.
    if (lastScan + lenf > scan - lenb) {
      const overlap = lastScan + lenf - (scan - lenb);
      let s = 0;
      let best = 0;
      let lens = 0;
      for (let i = 0; i < overlap; i++) {
        const tf = lastScan + lenf - overlap + i;
        const qf = lastPos + lenf - overlap + i;
        if ((qf < B ? nd[qf] : od[qf]) === target[tf]) s++;
        const tb = scan - lenb + i;
        const qb = pos - lenb + i;
        if ((qb < B ? nd[qb] : od[qb]) === target[tb]) s--;
        if (s > best) {
          best = s;
          lens = i + 1;
        }
      }
      lenf += lens - overlap;
      lenb -= lens;
    }

    pushOp(ops, lenf, lastPos, scan - lenb - (lastScan + lenf));
    lastScan = scan - lenb;
    lastPos = pos - lenb;
    lastOffset = pos - scan;
  }
  return ops;
}

/** Whether `target` is the new image's bytes at the boundary (same memory), as inplace chunks are. */
function isSliceOfNew(target: Uint8Array, window: ChunkWindow): boolean {
  const nd = window.newer?.data;
  return (
    window.boundary > 0 &&
    nd !== undefined &&
    target.buffer === nd.buffer &&
    target.byteOffset === nd.byteOffset + window.boundary &&
    window.boundary + target.length <= nd.length
  );
}

/** Append an op; a copy-less op after the first just extends the previous op's literals. */
function pushOp(ops: Op[], copyLen: number, srcPos: number, extraLen: number): void {
  if (copyLen === 0 && ops.length > 0) {
    ops[ops.length - 1].extraLen += extraLen;
    return;
  }
  ops.push({ copyLen, srcPos, extraLen });
}

/**
 * Turn copies that need a far seek but match only a few bytes into literals:
 * their lengths and seek cost more than the literals they replace.
 */
function dropFarShortCopies(ops: Op[], target: Uint8Array, window: ChunkWindow, o: Tuning): Op[] {
  const B = window.boundary;
  const od = window.old.data;
  const nd = window.newer?.data ?? NO_BYTES;
  const out: Op[] = [];
  let t = 0;
  for (const op of ops) {
    const prev = out.length > 0 ? out[out.length - 1] : undefined;
    if (prev && op.copyLen > 0 && Math.abs(op.srcPos - (prev.srcPos + prev.copyLen)) >= o.farDistance) {
      let same = 0;
      for (let k = 0; k < op.copyLen; k++) {
        const q = op.srcPos + k;
        if ((q < B ? nd[q] : od[q]) === target[t + k]) same++;
      }
      if (same < o.minFarCopy) {
        prev.extraLen += op.copyLen + op.extraLen;
        t += op.copyLen + op.extraLen;
        continue;
      }
    }
    out.push(op);
    t += op.copyLen + op.extraLen;
  }
  return out;
}
