// A small LZMA1 encoder for the device side: the in-place restore compresses the old bytes it saves in
// the backup ring (backup-ring.ts), so that a sector's backup takes less of a ring sector and the ring
// is erased less often. Firmware sectors compress to about three quarters.
//
// Scope, chosen for a bootloader's RAM and code size: inputs of at most LZMA_PACK_MAX bytes, properties
// lc=0 lp=0 pb=0 with a dictionary of LZMA_PACK_MAX bytes, a hash-chain match finder over the input,
// one-step lazy parsing, normal matches, rep0 matches and short reps (no rep1-3), no end marker (the
// length is stored beside the stream). The output is a standard raw LZMA stream: lzma-decoder.ts and
// any LZMA SDK decoder read it. Fixed RAM, allocated once (LZMA_ENCODER_RAM_BYTES).

/** Largest input (and the dictionary size of the streams made). */
export const LZMA_PACK_MAX = 4096;
/** Properties of every stream made here. */
export const LZMA_PACK_PROPS = { lc: 0, lp: 0, pb: 0, dictSize: LZMA_PACK_MAX } as const;

const HASH_BITS = 12;
/** Candidates tried per position: more finds longer matches at more CPU. */
const CHAIN_DEPTH = 24;
const MATCH_MIN = 2;
const MATCH_MAX = 273;

// Probability layout, as the decoder's (lc = lp = 0, one posState): per-state tables use state << 4.
const IS_MATCH = 0;
const IS_REP = 192;
const IS_REP_G0 = 204;
const IS_REP0_LONG = 240;
const POS_SLOT = 432;
const SPEC_POS = 688;
const ALIGN = 802;
const LEN_CODER = 818;
const REP_LEN_CODER = 1332;
const LITERAL = 1846;
const PROBS = LITERAL + 0x300;

/** RAM the encoder holds: probabilities, hash heads and chain, output buffer, and fields. */
export const LZMA_ENCODER_RAM_BYTES = 2 * PROBS + 2 * (1 << HASH_BITS) + 2 * LZMA_PACK_MAX + (LZMA_PACK_MAX + 64) + 256;

export class LzmaPacker {
  private readonly probs = new Uint16Array(PROBS);
  /** Last position + 1 with each hash (0: none). */
  private readonly head = new Uint16Array(1 << HASH_BITS);
  /** Previous position + 1 with the same hash as position i. */
  private readonly chain = new Uint16Array(LZMA_PACK_MAX);
  private readonly out = new Uint8Array(LZMA_PACK_MAX + 64);
  private outLen = 0;
  /** Output stops (the stream is given up) past this many bytes. */
  private outLimit = 0;
  private low = 0;
  private range = 0;
  private cache = 0;
  private cacheSize = 0;
  /** Distance - 1 of the match longest() found last (a field: no tuple per position). */
  private found = 0;

  /**
   * The raw LZMA stream of `data` (at most LZMA_PACK_MAX bytes), or null when it would take more than
   * `limit` bytes. The result is a view of the packer's buffer, valid until the next call.
   */
  pack(data: Uint8Array, limit: number): Uint8Array | null {
    const n = data.length;
    if (n > LZMA_PACK_MAX) throw new RangeError(`LzmaPacker: ${n} bytes is more than ${LZMA_PACK_MAX}`);
    this.outLimit = Math.min(limit, this.out.length);
    this.outLen = 0;
    this.low = 0;
    this.range = 0xffffffff;
    this.cache = 0;
    this.cacheSize = 1;
    this.probs.fill(1024);
    this.head.fill(0);
    let state = 0;
    let rep0 = 0;
    let pos = 0;
    // The match found at the next position by the lazy step, reused.
    let nextLen = -1;
    let nextDist = 0;
    while (pos < n) {
      if (this.outLen > this.outLimit) return null;
      let len = nextLen;
      let dist = nextDist;
      if (nextLen < 0) {
        len = this.longest(data, pos);
        dist = this.found;
      }
      nextLen = -1;
      const repLen = pos > rep0 ? matchLength(data, pos, pos - rep0 - 1, n) : 0;
      if (repLen >= MATCH_MIN && repLen + 1 >= len) {
        this.insertRun(data, pos, repLen);
        this.bit(IS_MATCH + (state << 4), 1);
        this.bit(IS_REP + state, 1);
        this.bit(IS_REP_G0 + state, 0);
        this.bit(IS_REP0_LONG + (state << 4), 1);
        this.length(REP_LEN_CODER, repLen);
        state = state < 7 ? 8 : 11;
        pos += repLen;
        continue;
      }
      if (len >= 3 || (len === 2 && dist < 128)) {
        // Lazy: a longer match one byte on is worth a literal first.
        this.insert(data, pos);
        const l2 = pos + 1 < n ? this.longest(data, pos + 1) : 0;
        const d2 = this.found;
        if (l2 > len + 1 || (l2 === len + 1 && d2 < dist)) {
          nextLen = l2;
          nextDist = d2;
          state = this.literal(data, pos, state, rep0);
          pos += 1;
          continue;
        }
        this.insertRun(data, pos + 1, len - 1);
        this.bit(IS_MATCH + (state << 4), 1);
        this.bit(IS_REP + state, 0);
        this.length(LEN_CODER, len);
        this.distance(dist, len);
        rep0 = dist;
        state = state < 7 ? 7 : 10;
        pos += len;
        continue;
      }
      this.insert(data, pos);
      if (pos > rep0 && data[pos] === data[pos - rep0 - 1] && state >= 7) {
        // Short rep: one byte at rep0, cheaper than a matched literal that equals its match byte.
        this.bit(IS_MATCH + (state << 4), 1);
        this.bit(IS_REP + state, 1);
        this.bit(IS_REP_G0 + state, 0);
        this.bit(IS_REP0_LONG + (state << 4), 0);
        state = state < 7 ? 9 : 11;
      } else state = this.literal(data, pos, state, rep0);
      pos += 1;
    }
    for (let i = 0; i < 5; i++) this.shiftLow();
    return this.outLen > this.outLimit ? null : this.out.subarray(0, this.outLen);
  }

  // ---- match finder --------------------------------------------------------------------------------

  private hashAt(data: Uint8Array, pos: number): number {
    return ((data[pos] | (data[pos + 1] << 8) | (data[pos + 2] << 16)) * 0x9e3779b1) >>> (32 - HASH_BITS);
  }

  private insert(data: Uint8Array, pos: number): void {
    if (pos + 3 > data.length) return;
    const h = this.hashAt(data, pos);
    this.chain[pos] = this.head[h];
    this.head[h] = pos + 1;
  }

  private insertRun(data: Uint8Array, pos: number, count: number): void {
    for (let i = 0; i < count; i++) this.insert(data, pos + i);
  }

  /** Length of the longest earlier match at pos (0 when none of 2 or more), its distance - 1 in `found`. */
  private longest(data: Uint8Array, pos: number): number {
    const n = data.length;
    let bestLen = 0;
    let bestDist = 0;
    if (pos + 3 <= n) {
      let cand = this.head[this.hashAt(data, pos)];
      for (let depth = 0; cand !== 0 && depth < CHAIN_DEPTH; depth++) {
        const at = cand - 1;
        const l = matchLength(data, pos, at, n);
        if (l > bestLen) {
          bestLen = l;
          bestDist = pos - at - 1;
          if (l === MATCH_MAX) break;
        }
        cand = this.chain[at];
      }
    }
    if (bestLen < MATCH_MIN) {
      // A 2-byte match just behind (hashes cover 3 bytes).
      bestLen = 0;
      bestDist = 0;
      for (let d = 0; d < 8 && pos - d - 1 >= 0 && pos + 1 < n; d++)
        if (data[pos - d - 1] === data[pos] && data[pos - d] === data[pos + 1]) {
          bestLen = 2;
          bestDist = d;
          break;
        }
    }
    this.found = bestDist;
    return bestLen;
  }

  // ---- symbols -------------------------------------------------------------------------------------

  private literal(data: Uint8Array, pos: number, state: number, rep0: number): number {
    const b = data[pos];
    this.bit(IS_MATCH + (state << 4), 0);
    if (state >= 7) {
      // Matched literal: the byte at rep0 steers the tree until the first differing bit.
      let matchByte = data[pos - rep0 - 1];
      let offs = 0x100;
      let symbol = b | 0x100;
      do {
        matchByte <<= 1;
        this.bit(LITERAL + offs + (matchByte & offs) + (symbol >>> 8), (symbol >>> 7) & 1);
        symbol <<= 1;
        offs &= ~(matchByte ^ symbol);
      } while (symbol < 0x10000);
    } else {
      let m = 1;
      for (let i = 7; i >= 0; i--) {
        const bit = (b >>> i) & 1;
        this.bit(LITERAL + m, bit);
        m = (m << 1) | bit;
      }
    }
    return state < 4 ? 0 : state < 10 ? state - 3 : state - 6;
  }

  private length(coder: number, len: number): void {
    const l = len - MATCH_MIN;
    if (l < 8) {
      this.bit(coder, 0);
      this.tree(coder + 2, 3, l);
    } else if (l < 16) {
      this.bit(coder, 1);
      this.bit(coder + 1, 0);
      this.tree(coder + 130, 3, l - 8);
    } else {
      this.bit(coder, 1);
      this.bit(coder + 1, 1);
      this.tree(coder + 258, 8, l - 16);
    }
  }

  private distance(dist: number, len: number): void {
    const lenState = Math.min(len - MATCH_MIN, 3);
    const slot = dist < 4 ? dist : 2 * (31 - Math.clz32(dist)) + ((dist >>> (30 - Math.clz32(dist))) & 1);
    this.tree(POS_SLOT + (lenState << 6), 6, slot);
    if (slot < 4) return;
    const footer = (slot >>> 1) - 1;
    const base = (2 | (slot & 1)) << footer;
    const reduced = dist - base;
    if (slot < 14) this.reverseTree(SPEC_POS + base - slot - 1, footer, reduced);
    else {
      this.direct(reduced >>> 4, footer - 4);
      this.reverseTree(ALIGN, 4, reduced & 15);
    }
  }

  // ---- range coder ---------------------------------------------------------------------------------

  private bit(i: number, bit: number): void {
    const p = this.probs[i];
    const bound = (this.range >>> 11) * p;
    if (bit === 0) {
      this.range = bound;
      this.probs[i] = p + ((2048 - p) >>> 5);
    } else {
      this.low += bound;
      this.range -= bound;
      this.probs[i] = p - (p >>> 5);
    }
    while (this.range < 0x1000000) {
      this.range = (this.range * 256) >>> 0;
      this.shiftLow();
    }
  }

  private tree(base: number, bits: number, value: number): void {
    let m = 1;
    for (let i = bits - 1; i >= 0; i--) {
      const bit = (value >>> i) & 1;
      this.bit(base + m, bit);
      m = (m << 1) | bit;
    }
  }

  private reverseTree(base: number, bits: number, value: number): void {
    let m = 1;
    for (let i = 0; i < bits; i++) {
      const bit = value & 1;
      this.bit(base + m, bit);
      m = (m << 1) | bit;
      value >>>= 1;
    }
  }

  private direct(value: number, bits: number): void {
    for (let i = bits - 1; i >= 0; i--) {
      this.range >>>= 1;
      if ((value >>> i) & 1) this.low += this.range;
      while (this.range < 0x1000000) {
        this.range = (this.range * 256) >>> 0;
        this.shiftLow();
      }
    }
  }

  private shiftLow(): void {
    // low is below 2^33: its bit 32 is the carry into the bytes held back (cache, then 0xFF runs).
    if (this.low < 0xff000000 || this.low >= 0x100000000) {
      const carry = this.low >= 0x100000000 ? 1 : 0;
      let temp = this.cache;
      do {
        this.emit((temp + carry) & 0xff);
        temp = 0xff;
      } while (--this.cacheSize !== 0);
      this.cache = (this.low >>> 24) & 0xff;
    }
    this.cacheSize++;
    this.low = (this.low & 0x00ffffff) * 256;
  }

  private emit(b: number): void {
    if (this.outLen < this.out.length) this.out[this.outLen] = b;
    this.outLen++;
  }
}

function matchLength(data: Uint8Array, a: number, b: number, n: number): number {
  const max = Math.min(MATCH_MAX, n - a);
  let l = 0;
  while (l < max && data[a + l] === data[b + l]) l++;
  return l;
}
