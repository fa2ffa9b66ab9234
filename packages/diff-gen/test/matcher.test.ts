import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { existsSync, readFileSync } from 'node:fs';
import { buildSuffixArray } from '../src/suffix-array.js';
import {
  indexImage,
  matchChunk,
  MatcherError,
  windowByte,
  type ChunkWindow,
  type MatchOptions,
  type Op,
  type SourceIndex,
} from '../src/matcher.js';

type Mode = 'ab' | 'inplace';

/** Deterministic pseudo-random bytes (xorshift32). */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/** Firmware-like bytes: code-ish noise from a small vocabulary, repeats and 0xFF padding. */
function firmwareLike(n: number, seed: number): Uint8Array {
  const r = rng(seed);
  const out = new Uint8Array(n);
  let i = 0;
  while (i < n) {
    const kind = r() % 8;
    const len = 8 + (r() % 120);
    if (kind === 0) {
      for (let j = 0; j < len && i < n; j++) out[i++] = 0xff;
    } else if (kind <= 2 && i > 64) {
      const from = r() % (i - 32);
      for (let j = 0; j < len && i < n; j++) out[i++] = out[from + j];
    } else {
      for (let j = 0; j < len && i < n; j++) out[i++] = (r() % 24) * 7;
    }
  }
  return out;
}

interface Edit {
  kind: 'insert' | 'delete' | 'replace' | 'move' | 'tweak';
  at: number;
  len: number;
  to: number;
  seed: number;
}

function applyEdits(base: Uint8Array, edits: Edit[]): Uint8Array {
  let cur = Array.from(base);
  for (const e of edits) {
    const n = cur.length;
    const at = n === 0 ? 0 : e.at % (n + 1);
    const r = rng(e.seed);
    switch (e.kind) {
      case 'insert':
        cur.splice(at, 0, ...Array.from({ length: e.len }, () => r() & 0xff));
        break;
      case 'delete':
        cur.splice(at, e.len);
        break;
      case 'replace':
        for (let k = 0; k < e.len && at + k < n; k++) cur[at + k] = r() & 0xff;
        break;
      case 'tweak':
        // Sparse changes, as relocated pointers and call offsets give.
        for (let k = 0; k < e.len && at + k * 13 < n; k++) cur[at + k * 13] = (cur[at + k * 13] + 1 + (r() % 4)) & 0xff;
        break;
      case 'move': {
        const block = cur.splice(at, e.len);
        const to = cur.length === 0 ? 0 : e.to % (cur.length + 1);
        cur.splice(to, 0, ...block);
        cur = cur.slice();
        break;
      }
    }
  }
  return Uint8Array.from(cur);
}

const editArb: fc.Arbitrary<Edit> = fc.record({
  kind: fc.constantFrom('insert', 'delete', 'replace', 'move', 'tweak'),
  at: fc.nat(),
  len: fc.integer({ min: 0, max: 700 }),
  to: fc.nat(),
  seed: fc.integer({ min: 1, max: 0x7fffffff }),
}) as fc.Arbitrary<Edit>;

/** The window as the device holds it: new[0:B] ++ old[B:], built explicitly. */
function explicitWindow(oldImg: Uint8Array, newImg: Uint8Array, B: number): Uint8Array {
  const w = new Uint8Array(Math.max(B, oldImg.length));
  w.set(newImg.subarray(0, B), 0);
  if (oldImg.length > B) w.set(oldImg.subarray(B), B);
  return w;
}

interface Checked {
  literals: number;
  nonzeroDiffs: number;
  copied: number;
}

/**
 * Check the ops' invariants, encode diffs the way the package encoder does
 * (through windowByte) and apply them with a reference applier against the
 * explicitly built window; the result must be the target.
 */
function checkOps(ops: Op[], target: Uint8Array, window: ChunkWindow, explicit: Uint8Array, startPos: number): Checked {
  const W = window.length;
  expect(explicit.length).toBe(W);
  if (target.length === 0) {
    expect(ops).toEqual([]);
    return { literals: 0, nonzeroDiffs: 0, copied: 0 };
  }
  expect(ops.length).toBeGreaterThan(0);
  if (W > 0) expect(ops[0].srcPos).toBe(startPos);
  const out = new Uint8Array(target.length);
  let t = 0;
  let literals = 0;
  let nonzeroDiffs = 0;
  let copied = 0;
  ops.forEach((op, j) => {
    expect(Number.isInteger(op.copyLen) && op.copyLen >= 0).toBe(true);
    expect(Number.isInteger(op.extraLen) && op.extraLen >= 0).toBe(true);
    if (j > 0) expect(op.copyLen).toBeGreaterThan(0);
    if (op.copyLen > 0) {
      expect(op.srcPos).toBeGreaterThanOrEqual(0);
      expect(op.srcPos + op.copyLen).toBeLessThanOrEqual(W);
    }
    for (let k = 0; k < op.copyLen; k++) {
      const diff = (target[t + k] - windowByte(window, op.srcPos + k)) & 0xff;
      if (diff !== 0) nonzeroDiffs++;
      out[t + k] = (explicit[op.srcPos + k] + diff) & 0xff;
    }
    t += op.copyLen;
    copied += op.copyLen;
    out.set(target.subarray(t, t + op.extraLen), t);
    t += op.extraLen;
    literals += op.extraLen;
  });
  expect(t).toBe(target.length);
  expect(Buffer.compare(out, target)).toBe(0);
  return { literals, nonzeroDiffs, copied };
}

/** Match every chunk of NEW in the given mode and check each one; returns totals. */
function matchImage(oldImg: Uint8Array, newImg: Uint8Array, S: number, mode: Mode, options: MatchOptions = {}): Checked & { ops: number } {
  const old = indexImage(oldImg);
  const newer: SourceIndex = { data: newImg, sa: buildSuffixArray(newImg) };
  const total = { literals: 0, nonzeroDiffs: 0, copied: 0, ops: 0 };
  const chunks = Math.max(1, Math.ceil(newImg.length / S));
  for (let i = 0; i < chunks; i++) {
    const start = i * S;
    const target = newImg.subarray(start, Math.min(newImg.length, start + S));
    const B = mode === 'inplace' ? start : 0;
    const window: ChunkWindow = { old, newer: B > 0 ? newer : undefined, boundary: B, length: Math.max(B, oldImg.length) };
    const startPos = Math.min(start, window.length);
    const ops = matchChunk(target, window, { ...options, startPos });
    const c = checkOps(ops, target, window, explicitWindow(oldImg, newImg, B), startPos);
    total.literals += c.literals;
    total.nonzeroDiffs += c.nonzeroDiffs;
    total.copied += c.copied;
    total.ops += ops.length;
  }
  return total;
}

describe('matchChunk: reconstruction in both modes', () => {
  it('rebuilds every chunk for random structured edits (fast-check)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 6000 }),
        fc.integer({ min: 1, max: 0x7fffffff }),
        fc.array(editArb, { maxLength: 6 }),
        fc.constantFrom(64, 256, 1000, 4096),
        fc.constantFrom<Mode>('ab', 'inplace'),
        (n, seed, edits, S, mode) => {
          const oldImg = firmwareLike(n, seed);
          const newImg = applyEdits(oldImg, edits);
          matchImage(oldImg, newImg, S, mode);
        },
      ),
      { numRuns: 120 },
    );
  });

  it('rebuilds unrelated random images and tiny images', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 300 }),
        fc.uint8Array({ maxLength: 300 }),
        fc.constantFrom(1, 7, 64),
        fc.constantFrom<Mode>('ab', 'inplace'),
        (oldImg, newImg, S, mode) => {
          matchImage(oldImg, newImg, S, mode);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('handles empty target, empty old, growth and shrinkage', () => {
    const base = firmwareLike(5000, 3);
    for (const mode of ['ab', 'inplace'] as const) {
      matchImage(new Uint8Array(0), base, 1024, mode); // empty old: all literals
      matchImage(base, new Uint8Array(0), 1024, mode); // empty new: no chunks to match
      const grown = new Uint8Array(9000);
      grown.set(base, 0);
      grown.set(base.subarray(0, 4000), 5000);
      matchImage(base, grown, 1000, mode); // new longer than old: later windows are all new bytes
      matchImage(base, base.subarray(0, 2345), 1000, mode); // shrinkage, size not a multiple of S
    }
    const old = indexImage(base);
    const w: ChunkWindow = { old, boundary: 0, length: base.length };
    expect(matchChunk(new Uint8Array(0), w)).toEqual([]);
    const empty = indexImage(new Uint8Array(0));
    expect(matchChunk(Uint8Array.of(1, 2, 3), { old: empty, boundary: 0, length: 0 })).toEqual([
      { copyLen: 0, srcPos: 0, extraLen: 3 },
    ]);
  });

  it('matches a target that is a copy (not a view) of the new image', () => {
    const oldImg = firmwareLike(20_000, 11);
    const newImg = applyEdits(oldImg, [
      { kind: 'insert', at: 3000, len: 300, to: 0, seed: 5 },
      { kind: 'move', at: 12_000, len: 2000, to: 1000, seed: 1 },
    ]);
    const old = indexImage(oldImg);
    const newer = indexImage(newImg);
    const B = 8192;
    const target = newImg.slice(B, B + 4096);
    const window: ChunkWindow = { old, newer, boundary: B, length: Math.max(B, oldImg.length) };
    const ops = matchChunk(target, window);
    checkOps(ops, target, window, explicitWindow(oldImg, newImg, B), B);
    // Same result as matching the view into the new image.
    expect(ops).toEqual(matchChunk(newImg.subarray(B, B + 4096), window));
  });
});

describe('matchChunk: quality', () => {
  it('identical images give one all-zero copy per chunk', () => {
    const img = firmwareLike(70_000, 9);
    for (const mode of ['ab', 'inplace'] as const) {
      const r = matchImage(img, img, 16_384, mode);
      expect(r.ops).toBe(Math.ceil(img.length / 16_384));
      expect(r.literals).toBe(0);
      expect(r.nonzeroDiffs).toBe(0);
    }
  });

  it('small edits cost little: few literals and few non-zero diffs', () => {
    const oldImg = firmwareLike(60_000, 21);
    const newImg = applyEdits(oldImg, [
      { kind: 'insert', at: 10_000, len: 200, to: 0, seed: 2 },
      { kind: 'tweak', at: 20_000, len: 40, to: 0, seed: 3 },
      { kind: 'delete', at: 35_000, len: 500, to: 0, seed: 4 },
      { kind: 'replace', at: 50_000, len: 64, to: 0, seed: 5 },
    ]);
    const ab = matchImage(oldImg, newImg, 16_384, 'ab');
    expect(ab.literals + ab.nonzeroDiffs).toBeLessThan(600);
    // Inplace loses the bytes the insertion pushes over each chunk boundary, but no more than that.
    const ip = matchImage(oldImg, newImg, 16_384, 'inplace');
    expect(ip.literals + ip.nonzeroDiffs).toBeLessThan(600 + 3 * 200 + 100);
  });

  it('reads restored new bytes below the boundary, not the old bytes they replaced', () => {
    // Old and new differ entirely below B; the chunk repeats new content from below B.
    const oldImg = firmwareLike(40_000, 31);
    const newImg = new Uint8Array(40_000);
    newImg.set(firmwareLike(20_000, 32), 0);
    newImg.set(newImg.subarray(2000, 12_000), 20_000);
    newImg.set(oldImg.subarray(30_000, 40_000), 30_000);
    const B = 20_000;
    const old = indexImage(oldImg);
    const newer = indexImage(newImg);
    const window: ChunkWindow = { old, newer, boundary: B, length: 40_000 };
    const target = newImg.subarray(B, 40_000);
    const ops = matchChunk(target, window);
    const c = checkOps(ops, target, window, explicitWindow(oldImg, newImg, B), B);
    expect(c.literals + c.nonzeroDiffs).toBeLessThan(50);
    expect(ops.length).toBeLessThanOrEqual(3);
  });

  it('does not use old bytes below the boundary even when they would match', () => {
    // The target holds pieces of old[0:B], which the window no longer has (new bytes there are unrelated).
    const oldImg = firmwareLike(30_000, 41);
    const newImg = firmwareLike(30_000, 42);
    newImg.set(oldImg.subarray(0, 3000), 20_000);
    newImg.set(oldImg.subarray(5000, 8000), 26_000);
    const B = 20_000;
    const window: ChunkWindow = { old: indexImage(oldImg), newer: indexImage(newImg), boundary: B, length: 30_000 };
    const target = newImg.subarray(B, 30_000);
    for (const maxCompare of [1024, 1 << 20]) {
      const ops = matchChunk(target, window, { maxCompare });
      const ip = checkOps(ops, target, window, explicitWindow(oldImg, newImg, B), B);
      // Copies, if any, must be real matches against the window, not against the overwritten old bytes.
      expect(ip.nonzeroDiffs).toBeLessThan(ip.copied / 2 + 1);
    }
    // In ab mode those pieces are clean copies from old.
    const ab: ChunkWindow = { old: window.old, boundary: 0, length: 30_000 };
    const abOps = matchChunk(target, ab, { startPos: B });
    const c = checkOps(abOps, target, ab, oldImg, B);
    expect(c.copied - c.nonzeroDiffs).toBeGreaterThan(6000);
  });

  it('handles long near-ties between the alignment and an exact copy elsewhere', () => {
    // The alignment has 5 mismatches over 64 KiB; an exact copy sits far away.
    // Neither wins by the switch margin, so the matcher walks the stretch byte
    // by byte (remembered match lengths keep that linear).
    const r = rng(77);
    const target = new Uint8Array(65_536).map(() => r() & 0xff);
    const oldImg = new Uint8Array(200_000);
    oldImg.set(target, 0);
    for (const k of [10_000, 20_000, 30_000, 40_000, 50_000]) oldImg[k] ^= 1;
    oldImg.set(target, 100_000);
    const window: ChunkWindow = { old: indexImage(oldImg), boundary: 0, length: oldImg.length };
    const ops = matchChunk(target, window, { startPos: 0 });
    const c = checkOps(ops, target, window, oldImg, 0);
    expect(c.literals).toBe(0);
    expect(c.nonzeroDiffs).toBeLessThanOrEqual(5);
    expect(ops.length).toBeLessThanOrEqual(2);
  });

  it('keeps working with one candidate and with bsdiff settings', () => {
    const oldImg = firmwareLike(30_000, 51);
    const newImg = applyEdits(oldImg, [{ kind: 'move', at: 5000, len: 3000, to: 20_000, seed: 1 }]);
    for (const options of [
      { maxCandidates: 1 },
      { mismatchCost: 1, minFarCopy: 0, switchMargin: 8, farSwitchMargin: 8, maxCompare: 16 },
    ] satisfies MatchOptions[]) {
      const r = matchImage(oldImg, newImg, 8192, 'ab', options);
      expect(r.literals + r.nonzeroDiffs).toBeLessThan(200);
    }
  });
});

describe('matchChunk: real firmware', () => {
  it('rebuilds an ESP8266 AT firmware update in both modes', () => {
    const dir = new URL('../../../corpus/esp8266-at/', import.meta.url);
    const a = new URL('at-v3.0.4.bin', dir);
    const b = new URL('at-v3.0.5.bin', dir);
    // Without the corpus, a synthetic pair with the same kind of edits stands in.
    const oldImg = existsSync(a) ? new Uint8Array(readFileSync(a)) : firmwareLike(400_000, 61);
    const newImg = existsSync(b)
      ? new Uint8Array(readFileSync(b))
      : applyEdits(oldImg, [
          { kind: 'insert', at: 90_000, len: 100, to: 0, seed: 1 },
          { kind: 'tweak', at: 1000, len: 3000, to: 0, seed: 2 },
        ]);
    for (const mode of ['ab', 'inplace'] as const) {
      const r = matchImage(oldImg, newImg, 65_536, mode);
      // A minor release: nearly everything is copied.
      expect(r.copied).toBeGreaterThan(newImg.length * 0.98);
    }
  });
});

describe('matchChunk: validation', () => {
  const img = firmwareLike(1000, 71);
  const old = indexImage(img);
  const newer = indexImage(img);

  it('rejects inconsistent windows', () => {
    const t = img.subarray(0, 10);
    expect(() => matchChunk(t, { old, boundary: 0, length: 999 })).toThrow(MatcherError);
    expect(() => matchChunk(t, { old, newer: indexImage(img.subarray(0, 5)), boundary: 10, length: 1000 })).toThrow(MatcherError);
    expect(() => matchChunk(t, { old, newer, boundary: -1, length: 1000 })).toThrow(MatcherError);
    expect(() => matchChunk(t, { old, newer, boundary: 1.5, length: 1000 })).toThrow(MatcherError);
    expect(() => matchChunk(t, { old: { data: img, sa: new Int32Array(3) }, boundary: 0, length: 1000 })).toThrow(MatcherError);
    expect(() => matchChunk(t, { old: { data: img, sa: old.sa, lcp: new Int32Array(2) }, boundary: 0, length: 1000 })).toThrow(
      MatcherError,
    );
  });

  it('without the new image, never references the window below the boundary', () => {
    // The target is OLD's first bytes: the best match is below B, which is off limits here.
    const t = img.subarray(0, 300);
    const ops = matchChunk(t, { old, boundary: 600, length: 1000 }, { startPos: 600 });
    let produced = 0;
    for (const op of ops) {
      if (op.copyLen > 0) expect(op.srcPos).toBeGreaterThanOrEqual(600);
      produced += op.copyLen + op.extraLen;
    }
    expect(produced).toBe(300);
    // With the new image given (here OLD stands in for it) the same bytes are found below B.
    const withNew = matchChunk(t, { old, newer: old, boundary: 600, length: 1000 }, { startPos: 600 });
    expect(withNew.some((op) => op.copyLen > 0 && op.srcPos < 600)).toBe(true);
  });

  it('rejects bad options', () => {
    const w: ChunkWindow = { old, boundary: 0, length: 1000 };
    const t = img.subarray(0, 10);
    expect(() => matchChunk(t, w, { maxCandidates: 0 })).toThrow(MatcherError);
    expect(() => matchChunk(t, w, { startPos: 1001 })).toThrow(MatcherError);
    expect(() => matchChunk(t, w, { mismatchCost: Number.NaN })).toThrow(MatcherError);
    expect(() => matchChunk(t, w, { maxCompare: 2.5 })).toThrow(MatcherError);
  });

  it('windowByte reads the right image and rejects positions outside the window', () => {
    const oldImg = Uint8Array.of(1, 2, 3, 4);
    const newImg = Uint8Array.of(9, 8, 7, 6, 5, 4);
    const w: ChunkWindow = {
      old: { data: oldImg, sa: buildSuffixArray(oldImg) },
      newer: { data: newImg, sa: buildSuffixArray(newImg) },
      boundary: 2,
      length: 4,
    };
    expect([0, 1, 2, 3].map((p) => windowByte(w, p))).toEqual([9, 8, 3, 4]);
    expect(() => windowByte(w, 4)).toThrow(MatcherError);
    expect(() => windowByte(w, -1)).toThrow(MatcherError);
    const grown: ChunkWindow = { ...w, boundary: 6, length: 6 };
    expect(windowByte(grown, 5)).toBe(4);
  });
});
