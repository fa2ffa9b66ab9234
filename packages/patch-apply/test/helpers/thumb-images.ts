// Small Thumb-2-like firmware for the transform tests: functions calling each other with BL, each
// followed by a literal pool of code and data addresses, linked at a load address. NEW inserts a
// function and edits a few others, so every reference after the insertion changes while its target
// only moved: what the Thumb-2 transform is for.
import { Prng } from '../../src/flash/prng.js';

interface Fn {
  /** Halfwords; a call is a pair of slots at `calls[k].at`. */
  body: number[];
  calls: { at: number; callee: number }[];
  /** Literal pool: a code address (function index) or a data offset into the string table. */
  pool: ({ fn: number } | { data: number })[];
}

/** Uniform in [0, 1), reproducible from `seed`. */
function prng(seed: number): () => number {
  const p = new Prng(seed);
  return () => p.nextU32() / 2 ** 32;
}

/** A 16-bit Thumb instruction that is no branch site (first byte anything, second never 0xF0-0xF7). */
function plainHalfword(r: () => number): number {
  const hi = Math.floor(r() * 0xe8); // 0x00-0xE7: no 32-bit encodings
  return (hi << 8) | Math.floor(r() * 256);
}

function randomFn(r: () => number, count: number): Fn {
  const body: number[] = [];
  const calls: Fn['calls'] = [];
  const n = 8 + Math.floor(r() * 60);
  for (let k = 0; k < n; k++) {
    if (r() < 0.15) {
      calls.push({ at: body.length, callee: Math.floor(r() * count) });
      body.push(0, 0);
    } else body.push(plainHalfword(r));
  }
  const pool: Fn['pool'] = [];
  for (let k = Math.floor(r() * 4); k > 0; k--) pool.push(r() < 0.6 ? { fn: Math.floor(r() * count) } : { data: Math.floor(r() * 200) });
  return { body, calls, pool };
}

/** Bytes of the vector table in front: initial SP, then 15 handlers (the first functions). */
const VECTORS = 64;

/** Lays the functions out from `base` behind a vector table (then a 256-byte string table) and resolves every reference. */
function link(fns: Fn[], base: number, strings: Uint8Array): Uint8Array {
  const starts: number[] = [];
  let at = VECTORS;
  for (const f of fns) {
    starts.push(at);
    at += 2 * f.body.length;
    at += at % 4;
    at += 4 * f.pool.length;
  }
  const dataAt = at;
  const out = new Uint8Array(dataAt + strings.length);
  out.set(strings, dataAt);
  const v = new DataView(out.buffer);
  v.setUint32(0, 0x2000_4000, true);
  for (let k = 1; k < VECTORS / 4; k++) v.setUint32(4 * k, (base + starts[(k - 1) % fns.length] + 1) >>> 0, true);
  fns.forEach((f, i) => {
    let p = starts[i];
    f.body.forEach((h, k) => v.setUint16(p + 2 * k, h, true));
    for (const c of f.calls) {
      const s = p + 2 * c.at;
      const off = (starts[c.callee] - (s + 4)) >> 1;
      // BL: 11110 S imm10, 11 J1 1 J2 imm11 with J1 = J2 = 1 (offsets within +-4 MiB).
      v.setUint16(s, 0xf000 | ((off >> 11) & 0x7ff), true);
      v.setUint16(s + 2, 0xf800 | (off & 0x7ff), true);
    }
    p += 2 * f.body.length;
    p += p % 4;
    for (const e of f.pool) {
      v.setUint32(p, ('fn' in e ? base + starts[e.fn] + 1 : base + dataAt + e.data) >>> 0, true);
      p += 4;
    }
  });
  return out;
}

/** OLD and NEW Thumb-like images of about `functions * 80` bytes, linked at `base`. */
export function thumbPair(functions: number, seed = 1, base = 0x0800_0000): { old: Uint8Array; neu: Uint8Array; base: number } {
  const r = prng(seed);
  const fns = Array.from({ length: functions }, () => randomFn(r, functions));
  const strings = Uint8Array.from({ length: 256 }, () => 0x20 + Math.floor(r() * 90));
  const old = link(fns, base, strings);
  // NEW: a new function early on (everything after it moves), a few edited bodies, one more string.
  const at = Math.floor(functions / 4);
  const renumber = (i: number) => (i >= at ? i + 1 : i);
  const next: Fn[] = fns.map((f) => ({ body: [...f.body], calls: f.calls.map((c) => ({ at: c.at, callee: renumber(c.callee) })), pool: f.pool.map((e) => ('fn' in e ? { fn: renumber(e.fn) } : e)) }));
  next.splice(at, 0, randomFn(r, functions + 1));
  for (let k = 0; k < 3; k++) {
    const f = next[Math.floor(r() * next.length)];
    f.body[Math.floor(r() * f.body.length)] = plainHalfword(r);
  }
  return { old, neu: link(next, base, strings), base };
}
