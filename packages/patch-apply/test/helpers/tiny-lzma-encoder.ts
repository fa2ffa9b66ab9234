// A small, slow, independent LZMA1 encoder for tests. It writes exactly the symbols it is told to
// (including invalid ones, e.g. distances past the start of the data) and can end a stream with or
// without the end marker, which lzma-native cannot (its raw LZMA1 encoder always writes the marker).

const TOP = 2 ** 24;

export type LzmaOp =
  | { kind: 'lit'; byte: number }
  /** Plain match; `dist` is the 1-based distance (dist 1 = previous byte). */
  | { kind: 'match'; dist: number; len: number }
  /** Match at one of the four most recent distances. */
  | { kind: 'rep'; index: 0 | 1 | 2 | 3; len: number }
  /** One byte at the most recent distance. */
  | { kind: 'shortrep' }
  /** End-of-payload marker. */
  | { kind: 'eopm' };

class RangeEncoder {
  readonly out: number[] = [];
  private low = 0; // up to 33 bits: kept as a plain number
  private range = 0xffffffff;
  private cache = 0;
  private cacheSize = 1;

  private shiftLow(): void {
    if (this.low < 0xff000000 || this.low >= 2 ** 32) {
      const carry = this.low >= 2 ** 32 ? 1 : 0;
      let temp = this.cache;
      do {
        this.out.push((temp + carry) & 0xff);
        temp = 0xff;
      } while (--this.cacheSize !== 0);
      this.cache = Math.floor(this.low / 2 ** 24) & 0xff;
    }
    this.cacheSize++;
    this.low = (this.low % 2 ** 24) * 256;
  }

  private normalize(): void {
    while (this.range < TOP) {
      this.range *= 256;
      this.shiftLow();
    }
  }

  bit(probs: Uint16Array, i: number, bit: number): void {
    const p = probs[i];
    const bound = Math.floor(this.range / 2048) * p;
    if (bit === 0) {
      this.range = bound;
      probs[i] = p + ((2048 - p) >> 5);
    } else {
      this.low += bound;
      this.range -= bound;
      probs[i] = p - (p >> 5);
    }
    this.normalize();
  }

  direct(value: number, count: number): void {
    for (let i = count - 1; i >= 0; i--) {
      this.range = Math.floor(this.range / 2);
      if (Math.floor(value / 2 ** i) % 2 === 1) this.low += this.range;
      this.normalize();
    }
  }

  tree(probs: Uint16Array, base: number, count: number, value: number): void {
    let m = 1;
    for (let i = count - 1; i >= 0; i--) {
      const b = (value >>> i) & 1;
      this.bit(probs, base + m, b);
      m = (m << 1) | b;
    }
  }

  reverseTree(probs: Uint16Array, base: number, count: number, value: number): void {
    let m = 1;
    for (let i = 0; i < count; i++) {
      const b = (value >>> i) & 1;
      this.bit(probs, base + m, b);
      m = (m << 1) | b;
    }
  }

  /** Bytes written or still pending: grows by one per normalisation, like the decoder's input position. */
  get size(): number {
    return this.out.length + this.cacheSize;
  }

  flush(): void {
    for (let i = 0; i < 5; i++) this.shiftLow();
  }
}

class LenModel {
  readonly choice = new Uint16Array(2).fill(1024);
  readonly low = new Uint16Array(16 * 8).fill(1024);
  readonly mid = new Uint16Array(16 * 8).fill(1024);
  readonly high = new Uint16Array(256).fill(1024);

  encode(rc: RangeEncoder, len: number, posState: number): void {
    const l = len - 2;
    if (l < 8) {
      rc.bit(this.choice, 0, 0);
      rc.tree(this.low, posState * 8, 3, l);
    } else if (l < 16) {
      rc.bit(this.choice, 0, 1);
      rc.bit(this.choice, 1, 0);
      rc.tree(this.mid, posState * 8, 3, l - 8);
    } else {
      rc.bit(this.choice, 0, 1);
      rc.bit(this.choice, 1, 1);
      rc.tree(this.high, 0, 8, l - 16);
    }
  }
}

export class TinyLzmaEncoder {
  private readonly rc = new RangeEncoder();
  private readonly isMatch = new Uint16Array(192).fill(1024);
  private readonly isRep = new Uint16Array(12).fill(1024);
  private readonly isRepG0 = new Uint16Array(12).fill(1024);
  private readonly isRepG1 = new Uint16Array(12).fill(1024);
  private readonly isRepG2 = new Uint16Array(12).fill(1024);
  private readonly isRep0Long = new Uint16Array(192).fill(1024);
  private readonly posSlot = new Uint16Array(4 * 64).fill(1024);
  /** One reverse tree per distance slot 4..13. */
  private readonly special: Uint16Array[] = [];
  private readonly align = new Uint16Array(16).fill(1024);
  private readonly lenModel = new LenModel();
  private readonly repLenModel = new LenModel();
  private readonly literal: Uint16Array;
  /** Uncompressed bytes so far (needed for the literal contexts). */
  readonly data: number[] = [];
  private state = 0;
  private reps = [0, 0, 0, 0]; // 0-based distances

  constructor(
    private readonly lc: number,
    private readonly lp: number,
    private readonly pb: number,
  ) {
    this.literal = new Uint16Array(0x300 << (lc + lp)).fill(1024);
    for (let slot = 0; slot < 14; slot++) this.special.push(new Uint16Array(64).fill(1024));
  }

  private byteAt(dist0: number): number {
    const i = this.data.length - dist0 - 1;
    return i >= 0 ? this.data[i] : 0;
  }

  encode(op: LzmaOp): void {
    const rc = this.rc;
    const pos = this.data.length;
    const posState = pos & ((1 << this.pb) - 1);
    const st = this.state;
    switch (op.kind) {
      case 'lit': {
        rc.bit(this.isMatch, (st << 4) + posState, 0);
        const prev = pos > 0 ? this.data[pos - 1] : 0;
        const base = 0x300 * (((pos & ((1 << this.lp) - 1)) << this.lc) + (prev >> (8 - this.lc)));
        let sym = 1;
        let i = 7;
        if (st >= 7) {
          const matchByte = this.byteAt(this.reps[0]);
          for (; i >= 0; i--) {
            const b = (op.byte >> i) & 1;
            const mb = (matchByte >> i) & 1;
            rc.bit(this.literal, base + ((1 + mb) << 8) + sym, b);
            sym = (sym << 1) | b;
            if (b !== mb) {
              i--;
              break;
            }
          }
        }
        for (; i >= 0; i--) {
          const b = (op.byte >> i) & 1;
          rc.bit(this.literal, base + sym, b);
          sym = (sym << 1) | b;
        }
        this.data.push(op.byte);
        this.state = st < 4 ? 0 : st < 10 ? st - 3 : st - 6;
        return;
      }
      case 'match':
      case 'eopm': {
        const dist0 = op.kind === 'eopm' ? 0xffffffff : op.dist - 1;
        const len = op.kind === 'eopm' ? 2 : op.len;
        rc.bit(this.isMatch, (st << 4) + posState, 1);
        rc.bit(this.isRep, st, 0);
        this.lenModel.encode(rc, len, posState);
        this.encodeDistance(dist0, len);
        this.reps = [dist0, this.reps[0], this.reps[1], this.reps[2]];
        this.state = st < 7 ? 7 : 10;
        if (op.kind === 'match') this.copy(dist0, len);
        return;
      }
      case 'rep': {
        rc.bit(this.isMatch, (st << 4) + posState, 1);
        rc.bit(this.isRep, st, 1);
        if (op.index === 0) {
          rc.bit(this.isRepG0, st, 0);
          rc.bit(this.isRep0Long, (st << 4) + posState, 1);
        } else {
          rc.bit(this.isRepG0, st, 1);
          if (op.index === 1) {
            rc.bit(this.isRepG1, st, 0);
          } else {
            rc.bit(this.isRepG1, st, 1);
            rc.bit(this.isRepG2, st, op.index - 2);
          }
          const d = this.reps[op.index];
          this.reps.splice(op.index, 1);
          this.reps.unshift(d);
        }
        this.repLenModel.encode(rc, op.len, posState);
        this.state = st < 7 ? 8 : 11;
        this.copy(this.reps[0], op.len);
        return;
      }
      case 'shortrep': {
        rc.bit(this.isMatch, (st << 4) + posState, 1);
        rc.bit(this.isRep, st, 1);
        rc.bit(this.isRepG0, st, 0);
        rc.bit(this.isRep0Long, (st << 4) + posState, 0);
        this.state = st < 7 ? 9 : 11;
        this.copy(this.reps[0], 1);
        return;
      }
    }
  }

  private copy(dist0: number, len: number): void {
    for (let k = 0; k < len; k++) this.data.push(this.byteAt(dist0));
  }

  private encodeDistance(dist0: number, len: number): void {
    const rc = this.rc;
    let slot: number;
    if (dist0 < 4) {
      slot = dist0;
    } else {
      let n = 0;
      while (2 ** (n + 1) <= dist0) n++;
      slot = 2 * n + (Math.floor(dist0 / 2 ** (n - 1)) % 2);
    }
    rc.tree(this.posSlot, Math.min(len - 2, 3) * 64, 6, slot);
    if (slot < 4) return;
    const footer = (slot >> 1) - 1;
    const reduced = dist0 - (2 + (slot & 1)) * 2 ** footer;
    if (slot < 14) {
      rc.reverseTree(this.special[slot], 0, footer, reduced);
    } else {
      rc.direct(Math.floor(reduced / 16), footer - 4);
      rc.reverseTree(this.align, 0, 4, reduced % 16);
    }
  }

  /** Compressed bytes so far (including the pending ones). */
  get compressedSize(): number {
    return this.rc.size;
  }

  /** Flushes the range coder; with `endMarker` the stream ends with an EOPM first. */
  finish(endMarker: boolean): Uint8Array {
    if (endMarker) this.encode({ kind: 'eopm' });
    this.rc.flush();
    return Uint8Array.from(this.rc.out);
  }
}

export interface TinyCompressOptions {
  lc: number;
  lp: number;
  pb: number;
  /** Largest distance used. */
  dictSize: number;
  endMarker: boolean;
}

/** Greedy compressor built on TinyLzmaEncoder: uses literals, matches, rep0..rep3 and short reps. */
export function tinyCompress(data: Uint8Array, o: TinyCompressOptions): Uint8Array {
  const enc = new TinyLzmaEncoder(o.lc, o.lp, o.pb);
  const heads = new Map<number, number[]>();
  const reps = [1, 1, 1, 1]; // 1-based, mirrors the encoder's
  const key = (i: number) => data[i] | (data[i + 1] << 8) | (data[i + 2] << 16);
  const matchLen = (i: number, dist: number) => {
    let n = 0;
    while (n < 273 && i + n < data.length && data[i + n] === data[i + n - dist]) n++;
    return n;
  };
  let i = 0;
  while (i < data.length) {
    let bestLen = 0;
    let bestDist = 0;
    let bestRep = -1;
    for (let r = 0; r < 4; r++) {
      if (reps[r] > i) continue;
      const n = matchLen(i, reps[r]);
      if (n >= 2 && n > bestLen) {
        bestLen = n;
        bestRep = r;
      }
    }
    if (i + 2 < data.length) {
      for (const cand of heads.get(key(i)) ?? []) {
        const dist = i - cand;
        if (dist > o.dictSize) continue;
        const n = matchLen(i, dist);
        if (n >= 3 && n > bestLen + 1) {
          bestLen = n;
          bestDist = dist;
          bestRep = -1;
        }
      }
    }
    let step: number;
    if (bestLen >= 2 && bestRep >= 0) {
      enc.encode({ kind: 'rep', index: bestRep as 0 | 1 | 2 | 3, len: bestLen });
      const d = reps[bestRep];
      reps.splice(bestRep, 1);
      reps.unshift(d);
      step = bestLen;
    } else if (bestDist > 0) {
      enc.encode({ kind: 'match', dist: bestDist, len: bestLen });
      reps.unshift(bestDist);
      reps.pop();
      step = bestLen;
    } else if (i >= reps[0] && data[i] === data[i - reps[0]] && (i & 3) === 0) {
      enc.encode({ kind: 'shortrep' });
      step = 1;
    } else {
      enc.encode({ kind: 'lit', byte: data[i] });
      step = 1;
    }
    for (let k = 0; k < step; k++, i++) {
      if (i + 2 < data.length) {
        const h = key(i);
        const list = heads.get(h) ?? [];
        list.unshift(i);
        if (list.length > 8) list.pop();
        heads.set(h, list);
      }
    }
  }
  return enc.finish(o.endMarker);
}
