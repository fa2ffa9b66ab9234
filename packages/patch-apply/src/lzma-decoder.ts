// Streaming decoder for raw LZMA1 streams (no .lzma header) of a known uncompressed size.
//
// Memory is fixed at construction: a circular dictionary of exactly `dictSize` bytes, one probability
// table and a small input stash. The stream may end with or without an end-of-payload marker (EOPM);
// either way the range coder must be flushed (code == 0) and no byte may follow the stream.
//
// Input handling: a symbol is only started when at least IN_REQUIRED bytes are available (or the input
// is final), so the hot loop never checks for the end of its buffer. Fewer bytes at the end of a piece
// are copied to the stash and joined with the start of the next piece; once the joined symbols are
// done, decoding continues in the caller's buffer. At the final piece the stash is zero-padded and any
// read into the padding is reported as truncated input.

// The generated stream only: the data generator behind it (lzma-warmup-data.ts) stays out of a device build.
import { WARMUP_STREAM, WARMUP_STREAM_LENGTH, WARMUP_STREAM_PROPS } from './lzma-warmup-stream.js';

export class LzmaError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LzmaError';
  }
}

export interface LzmaProps {
  lc: number;
  lp: number;
  pb: number;
  dictSize: number;
}

export const LZMA_DICT_SIZE_MIN = 4096;
export const LZMA_DICT_SIZE_MAX = 1 << 28;

/** lc/lp/pb from the classic properties byte ((pb*5+lp)*9+lc); throws LzmaError if > 224. */
export function decodePropsByte(b: number): { lc: number; lp: number; pb: number } {
  if (!Number.isInteger(b) || b < 0 || b > 224) throw new LzmaError(`invalid LZMA properties byte ${b}`);
  const lc = b % 9;
  const rest = (b - lc) / 9;
  const lp = rest % 5;
  return { lc, lp, pb: (rest - lp) / 5 };
}

export function encodePropsByte(p: { lc: number; lp: number; pb: number }): number {
  if (!isIntIn(p.lc, 0, 8) || !isIntIn(p.lp, 0, 4) || !isIntIn(p.pb, 0, 4)) {
    throw new LzmaError(`invalid LZMA properties lc=${p.lc} lp=${p.lp} pb=${p.pb}`);
  }
  return (p.pb * 5 + p.lp) * 9 + p.lc;
}

/** Bytes this decoder allocates for these props (dictionary + probability tables + small constant). */
export function lzmaDecoderRamBytes(props: LzmaProps): number {
  validateProps(props);
  return props.dictSize + 2 * probCount(props.lc, props.lp) + STASH_SIZE + FIXED_BYTES;
}

// Most input one symbol can consume: ~21 bytes (22 probability-coded bits of at most ~6 bits of range
// each, 26 direct bits, plus normalisation); a few bytes of margin cost nothing.
const IN_REQUIRED = 24;
// Old bytes (< IN_REQUIRED) + top-up from the next piece (up to 2*IN_REQUIRED in all) + zero padding.
const STASH_SIZE = 3 * IN_REQUIRED;
// Object fields and typed-array headers.
const FIXED_BYTES = 512;

// Hot-loop constants as a const enum: tsc inlines them as literals, whereas module-level consts are
// context slots that the optimiser reloads and checks for the temporal dead zone on every use.
const enum K {
  PROB_INIT = 1024,
  MATCH_LEN_MIN = 2,
  /** Flips the sign bit: (a ^ SIGN) < (b ^ SIGN) compares two int32s as unsigned. */
  SIGN = -0x80000000,
  /** The end marker's distance (0xFFFFFFFF) as an int32. */
  END_MARKER = -1,
  // Probability table layout (one Uint16Array). Per-state tables are indexed [state][posState] as state<<4.
  IS_MATCH = 0, // 12 states x 16 posStates
  IS_REP = 192, // 12
  IS_REP_G0 = 204, // 12
  IS_REP_G1 = 216, // 12
  IS_REP_G2 = 228, // 12
  IS_REP0_LONG = 240, // 12 x 16
  POS_SLOT = 432, // 4 length states x 64
  SPEC_POS = 688, // 114: reverse trees of distance slots 4..13
  ALIGN = 802, // 16
  LEN_CODER = 818, // 514
  REP_LEN_CODER = 1332, // 514
  LITERAL = 1846, // 0x300 per literal coder
  // Inside a length coder.
  LEN_CHOICE2 = 1,
  LEN_LOW = 2, // 16 posStates x 8
  LEN_MID = 130, // 16 posStates x 8
  LEN_HIGH = 258, // 256
}

function probCount(lc: number, lp: number): number {
  return K.LITERAL + (0x300 << (lc + lp));
}

function isIntIn(v: unknown, lo: number, hi: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi;
}

function validateProps(p: LzmaProps): void {
  if (p === null || typeof p !== 'object') throw new LzmaError('LZMA properties missing');
  const { lc, lp, pb, dictSize } = p;
  if (!isIntIn(lc, 0, 4) || !isIntIn(lp, 0, 4) || !isIntIn(pb, 0, 4) || lc + lp > 4) {
    throw new LzmaError(`unsupported LZMA properties lc=${lc} lp=${lp} pb=${pb} (need lc,lp,pb <= 4 and lc+lp <= 4)`);
  }
  if (!isIntIn(dictSize, LZMA_DICT_SIZE_MIN, LZMA_DICT_SIZE_MAX)) {
    throw new LzmaError(`LZMA dictionary size ${dictSize} outside [${LZMA_DICT_SIZE_MIN}, ${LZMA_DICT_SIZE_MAX}]`);
  }
}

let warmedUp = false;

/**
 * Decodes a built-in 1.9 KB stream of 10 KB (lzma-warmup-stream.ts) that takes every branch of run(), once per
 * process, before the first real stream. V8 optimises run() for what it saw while interpreting it; a
 * branch first taken later (a rare match kind, a copy across the dictionary's wrap) has no type
 * feedback, so it throws the optimised code away, and recompiling this large function costs tens of
 * milliseconds each time. In a short-lived process (the CLI, a boot) those recompilations cost more
 * than the decoding: on the 9.5 MB benchmark pair the first decode of every record took about twice
 * as long without this (a few ms).
 */
function warmUp(): void {
  warmedUp = true;
  const d = new LzmaDecoder(WARMUP_STREAM_PROPS);
  // Reads shorter than the dictionary and input in two pieces take the stash and cut-match paths too.
  const out = new Uint8Array(1000);
  const split = WARMUP_STREAM.length >> 1;
  d.reset(WARMUP_STREAM_LENGTH);
  d.feed(WARMUP_STREAM, 0, split, false);
  for (let i = 0; i < 100 && !d.done; i++) {
    if (d.needsInput) d.feed(WARMUP_STREAM, split, WARMUP_STREAM.length, true);
    d.read(out, 0, out.length);
  }
}

export class LzmaDecoder {
  private readonly lc: number;
  private readonly lpMask: number;
  private readonly pbMask: number;
  private readonly dictSize: number;
  private readonly dict: Uint8Array;
  private readonly probs: Uint16Array;
  private readonly stash = new Uint8Array(STASH_SIZE);

  // Stream bookkeeping.
  private armed = false;
  private failure: LzmaError | null = null;
  private expectedSize = 0;
  private produced = 0;
  private finished = false;
  private hungry = true;

  // Range coder: uint32 values held as int32 bit patterns (see run()).
  private rcReady = false;
  private range = 0;
  private code = 0;

  // LZMA state.
  private state = 0;
  private rep0 = 0;
  private rep1 = 0;
  private rep2 = 0;
  private rep3 = 0;
  /** Bytes of the current match still to copy (the caller's room ran out). */
  private pendingLen = 0;
  private markerSeen = false;

  // Dictionary: next write position, whether it has wrapped, and (total position - dictPos) mod 16.
  private dictPos = 0;
  private wrapped = false;
  private posOffset = 0;

  // Input: the caller's current piece, and the stash. Bytes stash[0, stashOld) did not come from
  // the current piece; bytes stash[stashOld, stashLen) are a copy of the piece bytes just before piecePos.
  private piece: Uint8Array | null = null;
  private piecePos = 0;
  private pieceEnd = 0;
  private inputFinal = false;
  private fedTotal = 0;
  private stashPos = 0;
  private stashLen = 0;
  private stashOld = 0;
  /** Current decoding window: stash (true) or piece; symbols start while inPos <= inLimit. */
  private inStash = false;
  private inLimit = 0;
  /** The window is the zero-padded tail of the final input: reading past stashLen means truncation. */
  private finalWindow = false;

  /** Validates: lc<=4, lp<=4, pb<=4, lc+lp<=4, 4096 <= dictSize <= 1<<28 (throw LzmaError otherwise). Allocates once. */
  constructor(props: LzmaProps) {
    validateProps(props);
    this.lc = props.lc;
    this.lpMask = (1 << props.lp) - 1;
    this.pbMask = (1 << props.pb) - 1;
    this.dictSize = props.dictSize;
    this.dict = new Uint8Array(props.dictSize);
    this.probs = new Uint16Array(probCount(props.lc, props.lp));
    if (!warmedUp) warmUp();
  }

  /** True when it cannot make progress without feed(). */
  get needsInput(): boolean {
    return this.hungry;
  }

  /** expectedSize bytes produced AND the end of the stream verified. */
  get done(): boolean {
    return this.finished;
  }

  /** Total compressed bytes consumed in this stream. */
  get inputConsumed(): number {
    return this.fedTotal - (this.pieceEnd - this.piecePos) - (this.stashLen - this.stashPos);
  }

  /** Start a new stream (re-uses the buffers) that must produce exactly `expectedSize` bytes. */
  reset(expectedSize: number): void {
    if (!Number.isSafeInteger(expectedSize) || expectedSize < 0) {
      throw new LzmaError(`invalid expected size ${expectedSize}`);
    }
    this.armed = true;
    this.failure = null;
    this.expectedSize = expectedSize;
    this.produced = 0;
    this.finished = false;
    this.hungry = true;
    this.rcReady = false;
    this.range = 0;
    this.code = 0;
    this.state = 0;
    this.rep0 = this.rep1 = this.rep2 = this.rep3 = 0;
    this.pendingLen = 0;
    this.markerSeen = false;
    this.dictPos = 0;
    this.wrapped = false;
    this.posOffset = 0;
    this.piece = null;
    this.piecePos = this.pieceEnd = 0;
    this.inputFinal = false;
    this.fedTotal = 0;
    this.stashPos = this.stashLen = this.stashOld = 0;
    this.inStash = false;
    this.inLimit = 0;
    this.finalWindow = false;
    this.probs.fill(K.PROB_INIT);
    // The literal coder reads the byte before position 0 from the buffer's end: 0 until it wraps.
    this.dict[this.dictSize - 1] = 0;
  }

  /**
   * Give the next piece of compressed input (any size, including 0). Only allowed while needsInput is
   * true (an empty non-final piece leaves it true). The decoder reads `buf` only during read() calls
   * and drops it as soon as it needs more input. Any byte after the end of the stream is an error.
   */
  feed(buf: Uint8Array, start: number, end: number, final: boolean): void {
    this.checkUsable();
    if (!(buf instanceof Uint8Array) || !isIntIn(start, 0, buf.length) || !isIntIn(end, start, buf.length)) {
      throw new LzmaError(`feed: invalid range [${start}, ${end}) of a ${buf?.length}-byte buffer`);
    }
    if (this.inputFinal) {
      if (end > start) this.fail('input given after the final piece');
      return;
    }
    if (this.finished) {
      if (end > start) this.fail(`${end - start} trailing bytes after the end of the LZMA stream`);
      this.inputFinal = final;
      return;
    }
    if (!this.hungry) this.fail('feed() called before the previous input was consumed (needsInput is false)');
    // A Buffer (or other subclass) next to the plain Uint8Array stash would make run()'s input reads
    // polymorphic, which deoptimises it; a plain view of the same bytes keeps them monomorphic.
    this.piece = Object.getPrototypeOf(buf) === Uint8Array.prototype ? buf : new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    this.piecePos = start;
    this.pieceEnd = end;
    this.fedTotal += end - start;
    this.inputFinal = final;
    // Everything still in the stash came from earlier pieces (already so whenever needsInput is set).
    this.stashOld = this.stashLen;
    if (end > start || final) this.hungry = false;
  }

  /**
   * Decode up to `len` bytes into out[pos..]; returns the count written (0 when it needs input or is
   * done). A call with len 0 lets the decoder verify the end of the stream once all bytes are out.
   */
  read(out: Uint8Array, pos: number, len: number): number {
    this.checkUsable();
    if (!(out instanceof Uint8Array) || !isIntIn(pos, 0, out.length) || !isIntIn(len, 0, out.length - pos)) {
      throw new LzmaError(`read: invalid range pos=${pos} len=${len} of a ${out?.length}-byte buffer`);
    }
    if (this.finished) return 0;
    let written = 0;
    while (written < len) {
      const left = this.expectedSize - this.produced;
      if (left === 0) break;
      if (!this.rcReady && !this.initRangeCoder()) break;
      const start = this.dictPos;
      let limit = this.dictSize;
      if (limit - start > left) limit = start + left;
      if (limit - start > len - written) limit = start + (len - written);
      if (this.pendingLen > 0) this.copyPending(limit);
      if (this.dictPos < limit) {
        if (this.prepareWindow()) {
          this.run(limit);
          this.checkTruncation();
        } else {
          this.hungry = true;
        }
      }
      const n = this.dictPos - start;
      if (n > 0) {
        copyOut(this.dict, start, out, pos + written, n);
        written += n;
        this.produced += n;
      }
      if (this.dictPos === this.dictSize) {
        this.dictPos = 0;
        this.wrapped = true;
        this.posOffset = (this.posOffset + this.dictSize) & 15;
      }
      if (this.markerSeen) {
        this.fail(`end marker after ${this.produced} bytes, expected ${this.expectedSize}`);
      }
      if (this.hungry) break;
    }
    if (this.produced === this.expectedSize && !this.hungry) this.finish();
    return written;
  }

  private checkUsable(): void {
    if (!this.armed) throw new LzmaError('LzmaDecoder used before reset()');
    if (this.failure !== null) throw this.failure;
  }

  private fail(msg: string): never {
    const e = new LzmaError(msg);
    this.failure = e;
    this.piece = null;
    throw e;
  }

  /** A symbol decoded into nonsense; if it read the zero padding, the real cause is truncation. */
  private corrupt(inPos: number, what: string): never {
    if (this.finalWindow && this.inStash && inPos > this.stashLen) this.fail('compressed stream is truncated');
    this.fail(`corrupt LZMA stream: ${what}`);
  }

  private checkTruncation(): void {
    if (this.finalWindow && this.inStash && this.stashPos > this.stashLen) {
      this.fail('compressed stream is truncated');
    }
  }

  /**
   * Chooses where the next symbols are decoded from; false when fewer than IN_REQUIRED bytes are
   * available and more input may come (the leftover is then in the stash and the piece is dropped).
   */
  private prepareWindow(): boolean {
    const stash = this.stash;
    // Leave the stash once its old bytes are consumed: the rest is a copy of the piece just before piecePos.
    if (this.stashPos >= this.stashOld && this.piece !== null) {
      this.piecePos -= this.stashLen - this.stashPos;
      this.stashPos = this.stashLen = this.stashOld = 0;
    }
    if (this.stashPos === this.stashLen) this.stashPos = this.stashLen = this.stashOld = 0;
    if (this.stashLen === 0 && this.pieceEnd - this.piecePos >= IN_REQUIRED) {
      this.inStash = false;
      this.finalWindow = false;
      this.inLimit = this.pieceEnd - IN_REQUIRED;
      return true;
    }
    // Compact the stash and top it up from the piece.
    if (this.stashPos > 0) {
      stash.copyWithin(0, this.stashPos, this.stashLen);
      this.stashLen -= this.stashPos;
      this.stashOld = this.stashOld > this.stashPos ? this.stashOld - this.stashPos : 0;
      this.stashPos = 0;
    }
    const piece = this.piece;
    if (piece !== null) {
      let take = 2 * IN_REQUIRED - this.stashLen;
      if (take > this.pieceEnd - this.piecePos) take = this.pieceEnd - this.piecePos;
      for (let i = 0; i < take; i++) stash[this.stashLen + i] = piece[this.piecePos + i];
      this.stashLen += take > 0 ? take : 0;
      this.piecePos += take > 0 ? take : 0;
    }
    this.inStash = true;
    if (this.inputFinal && this.piecePos === this.pieceEnd) {
      stash.fill(0, this.stashLen, this.stashLen + IN_REQUIRED);
      this.finalWindow = true;
      this.inLimit = this.stashLen;
      return true;
    }
    this.finalWindow = false;
    if (this.stashLen >= IN_REQUIRED) {
      this.inLimit = this.stashLen - IN_REQUIRED;
      return true;
    }
    // Not enough for one symbol, so the piece is exhausted (the top-up would have filled the stash).
    this.piece = null;
    this.piecePos = this.pieceEnd = 0;
    this.stashOld = this.stashLen;
    return false;
  }

  private initRangeCoder(): boolean {
    if (!this.prepareWindow()) {
      this.hungry = true;
      return false;
    }
    const src = this.inStash ? this.stash : (this.piece as Uint8Array);
    const p = this.inStash ? this.stashPos : this.piecePos;
    const first = src[p];
    const code = (src[p + 1] << 24) | (src[p + 2] << 16) | (src[p + 3] << 8) | src[p + 4];
    if (this.inStash) this.stashPos = p + 5;
    else this.piecePos = p + 5;
    this.checkTruncation();
    if (first !== 0) this.fail(`corrupt LZMA stream: first byte is 0x${first.toString(16)}, not 0`);
    if (code === -1) this.fail('corrupt LZMA stream: invalid range coder start');
    this.range = -1; // 0xFFFFFFFF
    this.code = code;
    this.rcReady = true;
    return true;
  }

  /** All bytes are out: verify the end of the stream (end marker or flushed range coder, nothing after). */
  private finish(): void {
    if (this.pendingLen > 0) this.fail('stream continues past the expected size (match crosses the end)');
    if (!this.rcReady && !this.initRangeCoder()) return;
    if (this.code !== 0) {
      // The range coder is not flushed, so the next symbol must be the end marker. A zero code can
      // never start a marker (its first bit would decode as 0), so there is no ambiguity.
      if (!this.prepareWindow()) {
        this.hungry = true;
        return;
      }
      // One byte of room: a literal or a real match makes progress and is rejected below.
      this.run(this.dictPos + 1);
      this.checkTruncation();
      if (!this.markerSeen) this.fail(`stream continues past the expected size ${this.expectedSize}`);
      if (this.code !== 0) this.fail('corrupt LZMA stream: range coder not flushed after the end marker');
    }
    const left = this.pieceEnd - this.piecePos + (this.stashLen - this.stashPos);
    if (left > 0) this.fail(`${left} trailing bytes after the end of the LZMA stream`);
    this.finished = true;
    this.hungry = false;
    this.piece = null;
    this.piecePos = this.pieceEnd = 0;
  }

  /** Continues a match cut short by the caller's room. */
  private copyPending(limit: number): void {
    const dict = this.dict;
    let n = limit - this.dictPos;
    if (n > this.pendingLen) n = this.pendingLen;
    let src = this.dictPos - this.rep0 - 1;
    if (src < 0) src += this.dictSize;
    let dst = this.dictPos;
    const end = dst + n;
    while (dst < end) {
      dict[dst++] = dict[src++];
      if (src === this.dictSize) src = 0;
    }
    this.dictPos = end;
    this.pendingLen -= n;
  }

  /**
   * The hot loop: decodes whole symbols into the dictionary until dictPos reaches dictLimit
   * (<= dictSize), the input window is used up, or the end marker is seen. The range decoder is
   * inlined; it normalises after every bit, like the encoder, so the input position always matches
   * the encoder's output count exactly.
   */
  private run(dictLimit: number): void {
    const src = this.inStash ? this.stash : (this.piece as Uint8Array);
    let inPos = (this.inStash ? this.stashPos : this.piecePos) | 0;
    const inLimit = this.inLimit | 0;
    const probs = this.probs;
    const dict = this.dict;
    const dictSize = this.dictSize;
    const lc = this.lc;
    const litShift = 8 - lc;
    const lpMask = this.lpMask;
    const pbMask = this.pbMask;
    const posOffset = this.posOffset;
    const wrapped = this.wrapped;
    // range and code are uint32s held as int32 bit patterns, compared through K.SIGN. Every value in
    // this loop is then an int32: a `>>> 0` result >= 2^31 would leave the small-integer type the
    // optimiser saw while the loop was interpreted and deoptimise it (in a short-lived process, the
    // recompilations cost more than the decoding).
    let range = this.range | 0;
    let code = this.code | 0;
    let state = this.state;
    let rep0 = this.rep0;
    let rep1 = this.rep1;
    let rep2 = this.rep2;
    let rep3 = this.rep3;
    let dictPos = this.dictPos | 0;
    dictLimit |= 0;
    let pending = 0;
    let marker = false;
    let prob = 0;
    let bound = 0;
    let pi = 0;
    let sym = 0;

    while (dictPos < dictLimit && inPos <= inLimit) {
      const posState = (dictPos + posOffset) & pbMask;
      pi = K.IS_MATCH + (state << 4) + posState;
      prob = probs[pi];
      bound = Math.imul(range >>> 11, prob);
      if ((code ^ K.SIGN) < (bound ^ K.SIGN)) {
        range = bound;
        probs[pi] = prob + ((2048 - prob) >>> 5);
        if (range >>> 24 === 0) {
          range <<= 8;
          code = (code << 8) | src[inPos++];
        }
        // Literal: coder chosen by position low bits and the previous byte's high bits.
        // At dictPos 0 the previous byte is the last of the buffer: 0 until it wraps (reset clears it).
        const prev = dict[(dictPos === 0 ? dictSize : dictPos) - 1];
        const base = K.LITERAL + 0x300 * ((((dictPos + posOffset) & lpMask) << lc) + (prev >>> litShift));
        sym = 1;
        if (state >= 7) {
          // After a match the byte at rep0 steers the probabilities until the first differing bit.
          let mi = dictPos - rep0 - 1;
          // Wrap without a branch: a branch taken rarely has no type feedback and deoptimises run() when it is.
          mi += dictSize & (mi >> 31);
          let matchByte = dict[mi];
          do {
            const matchBit = (matchByte >>> 7) & 1;
            matchByte <<= 1;
            pi = base + 0x100 + (matchBit << 8) + sym;
            prob = probs[pi];
            bound = Math.imul(range >>> 11, prob);
            let bit: number;
            if ((code ^ K.SIGN) < (bound ^ K.SIGN)) {
              range = bound;
              probs[pi] = prob + ((2048 - prob) >>> 5);
              sym <<= 1;
              bit = 0;
            } else {
              range = (range - bound) | 0;
              code = (code - bound) | 0;
              probs[pi] = prob - (prob >>> 5);
              sym = (sym << 1) | 1;
              bit = 1;
            }
            if (range >>> 24 === 0) {
              range <<= 8;
              code = (code << 8) | src[inPos++];
            }
            if (bit !== matchBit) break;
          } while (sym < 0x100);
        }
        while (sym < 0x100) {
          pi = base + sym;
          prob = probs[pi];
          bound = Math.imul(range >>> 11, prob);
          if ((code ^ K.SIGN) < (bound ^ K.SIGN)) {
            range = bound;
            probs[pi] = prob + ((2048 - prob) >>> 5);
            sym <<= 1;
          } else {
            range = (range - bound) | 0;
            code = (code - bound) | 0;
            probs[pi] = prob - (prob >>> 5);
            sym = (sym << 1) | 1;
          }
          if (range >>> 24 === 0) {
            range <<= 8;
            code = (code << 8) | src[inPos++];
          }
        }
        dict[dictPos++] = sym;
        state = state < 4 ? 0 : state < 10 ? state - 3 : state - 6;
        continue;
      }
      range = (range - bound) | 0;
      code = (code - bound) | 0;
      probs[pi] = prob - (prob >>> 5);
      if (range >>> 24 === 0) {
        range <<= 8;
        code = (code << 8) | src[inPos++];
      }

      // isRep
      pi = K.IS_REP + state;
      prob = probs[pi];
      bound = Math.imul(range >>> 11, prob);
      let lenCoder: number;
      let isRep: boolean;
      if ((code ^ K.SIGN) < (bound ^ K.SIGN)) {
        range = bound;
        probs[pi] = prob + ((2048 - prob) >>> 5);
        if (range >>> 24 === 0) {
          range <<= 8;
          code = (code << 8) | src[inPos++];
        }
        isRep = false;
        lenCoder = K.LEN_CODER;
      } else {
        range = (range - bound) | 0;
        code = (code - bound) | 0;
        probs[pi] = prob - (prob >>> 5);
        if (range >>> 24 === 0) {
          range <<= 8;
          code = (code << 8) | src[inPos++];
        }
        if (!wrapped && dictPos === 0) this.corrupt(inPos, 'repeated match before any data');
        isRep = true;
        lenCoder = K.REP_LEN_CODER;
        // isRepG0
        pi = K.IS_REP_G0 + state;
        prob = probs[pi];
        bound = Math.imul(range >>> 11, prob);
        if ((code ^ K.SIGN) < (bound ^ K.SIGN)) {
          range = bound;
          probs[pi] = prob + ((2048 - prob) >>> 5);
          if (range >>> 24 === 0) {
            range <<= 8;
            code = (code << 8) | src[inPos++];
          }
          // isRep0Long: 0 means a one-byte "short rep" at rep0.
          pi = K.IS_REP0_LONG + (state << 4) + posState;
          prob = probs[pi];
          bound = Math.imul(range >>> 11, prob);
          if ((code ^ K.SIGN) < (bound ^ K.SIGN)) {
            range = bound;
            probs[pi] = prob + ((2048 - prob) >>> 5);
            if (range >>> 24 === 0) {
              range <<= 8;
              code = (code << 8) | src[inPos++];
            }
            let s = dictPos - rep0 - 1;
            s += dictSize & (s >> 31);
            dict[dictPos++] = dict[s];
            state = state < 7 ? 9 : 11;
            continue;
          }
          range = (range - bound) | 0;
          code = (code - bound) | 0;
          probs[pi] = prob - (prob >>> 5);
          if (range >>> 24 === 0) {
            range <<= 8;
            code = (code << 8) | src[inPos++];
          }
        } else {
          range = (range - bound) | 0;
          code = (code - bound) | 0;
          probs[pi] = prob - (prob >>> 5);
          if (range >>> 24 === 0) {
            range <<= 8;
            code = (code << 8) | src[inPos++];
          }
          let dist: number;
          // isRepG1
          pi = K.IS_REP_G1 + state;
          prob = probs[pi];
          bound = Math.imul(range >>> 11, prob);
          if ((code ^ K.SIGN) < (bound ^ K.SIGN)) {
            range = bound;
            probs[pi] = prob + ((2048 - prob) >>> 5);
            if (range >>> 24 === 0) {
              range <<= 8;
              code = (code << 8) | src[inPos++];
            }
            dist = rep1;
          } else {
            range = (range - bound) | 0;
            code = (code - bound) | 0;
            probs[pi] = prob - (prob >>> 5);
            if (range >>> 24 === 0) {
              range <<= 8;
              code = (code << 8) | src[inPos++];
            }
            // isRepG2
            pi = K.IS_REP_G2 + state;
            prob = probs[pi];
            bound = Math.imul(range >>> 11, prob);
            if ((code ^ K.SIGN) < (bound ^ K.SIGN)) {
              range = bound;
              probs[pi] = prob + ((2048 - prob) >>> 5);
              dist = rep2;
            } else {
              range = (range - bound) | 0;
              code = (code - bound) | 0;
              probs[pi] = prob - (prob >>> 5);
              dist = rep3;
              rep3 = rep2;
            }
            if (range >>> 24 === 0) {
              range <<= 8;
              code = (code << 8) | src[inPos++];
            }
            rep2 = rep1;
          }
          rep1 = rep0;
          rep0 = dist;
        }
      }

      // Match length: choice bits select a 3-bit low/mid tree (per posState) or the 8-bit high tree.
      pi = lenCoder;
      prob = probs[pi];
      bound = Math.imul(range >>> 11, prob);
      let tree: number;
      let limit: number;
      let len: number;
      if ((code ^ K.SIGN) < (bound ^ K.SIGN)) {
        range = bound;
        probs[pi] = prob + ((2048 - prob) >>> 5);
        tree = lenCoder + K.LEN_LOW + (posState << 3);
        limit = 8;
        len = K.MATCH_LEN_MIN;
      } else {
        range = (range - bound) | 0;
        code = (code - bound) | 0;
        probs[pi] = prob - (prob >>> 5);
        if (range >>> 24 === 0) {
          range <<= 8;
          code = (code << 8) | src[inPos++];
        }
        pi = lenCoder + K.LEN_CHOICE2;
        prob = probs[pi];
        bound = Math.imul(range >>> 11, prob);
        if ((code ^ K.SIGN) < (bound ^ K.SIGN)) {
          range = bound;
          probs[pi] = prob + ((2048 - prob) >>> 5);
          tree = lenCoder + K.LEN_MID + (posState << 3);
          limit = 8;
          len = K.MATCH_LEN_MIN + 8;
        } else {
          range = (range - bound) | 0;
          code = (code - bound) | 0;
          probs[pi] = prob - (prob >>> 5);
          tree = lenCoder + K.LEN_HIGH;
          limit = 256;
          len = K.MATCH_LEN_MIN + 16;
        }
      }
      if (range >>> 24 === 0) {
        range <<= 8;
        code = (code << 8) | src[inPos++];
      }
      sym = 1;
      do {
        pi = tree + sym;
        prob = probs[pi];
        bound = Math.imul(range >>> 11, prob);
        if ((code ^ K.SIGN) < (bound ^ K.SIGN)) {
          range = bound;
          probs[pi] = prob + ((2048 - prob) >>> 5);
          sym <<= 1;
        } else {
          range = (range - bound) | 0;
          code = (code - bound) | 0;
          probs[pi] = prob - (prob >>> 5);
          sym = (sym << 1) | 1;
        }
        if (range >>> 24 === 0) {
          range <<= 8;
          code = (code << 8) | src[inPos++];
        }
      } while (sym < limit);
      len += sym - limit;

      if (isRep) {
        state = state < 7 ? 8 : 11;
      } else {
        // Distance: 6-bit slot (tree chosen by length), then reverse-coded low bits or
        // direct bits + 4 reverse-coded align bits.
        state = state < 7 ? 7 : 10;
        tree = K.POS_SLOT + ((len < 6 ? len - K.MATCH_LEN_MIN : 3) << 6);
        sym = 1;
        do {
          pi = tree + sym;
          prob = probs[pi];
          bound = Math.imul(range >>> 11, prob);
          if ((code ^ K.SIGN) < (bound ^ K.SIGN)) {
            range = bound;
            probs[pi] = prob + ((2048 - prob) >>> 5);
            sym <<= 1;
          } else {
            range = (range - bound) | 0;
            code = (code - bound) | 0;
            probs[pi] = prob - (prob >>> 5);
            sym = (sym << 1) | 1;
          }
          if (range >>> 24 === 0) {
            range <<= 8;
            code = (code << 8) | src[inPos++];
          }
        } while (sym < 64);
        const slot = sym - 64;
        let dist: number;
        if (slot < 4) {
          dist = slot;
        } else {
          const nDirect = (slot >>> 1) - 1;
          dist = (2 | (slot & 1)) << nDirect; // slot 63: bit 31 set, i.e. negative
          let revBase: number;
          let revBits: number;
          if (slot < 14) {
            revBase = K.SPEC_POS + dist - slot - 1;
            revBits = nDirect;
          } else {
            let direct = 0;
            for (let i = nDirect - 4; i > 0; i--) {
              range >>>= 1;
              if ((code ^ K.SIGN) >= (range ^ K.SIGN)) {
                code = (code - range) | 0;
                direct = (direct << 1) | 1;
              } else {
                direct <<= 1;
              }
              if (range >>> 24 === 0) {
                range <<= 8;
                code = (code << 8) | src[inPos++];
              }
            }
            dist = (dist + (direct << 4)) | 0;
            revBase = K.ALIGN;
            revBits = 4;
          }
          // Reverse bit tree: least significant bit first.
          let m = 1;
          let low = 0;
          for (let i = 0; i < revBits; i++) {
            pi = revBase + m;
            prob = probs[pi];
            bound = Math.imul(range >>> 11, prob);
            if ((code ^ K.SIGN) < (bound ^ K.SIGN)) {
              range = bound;
              probs[pi] = prob + ((2048 - prob) >>> 5);
              m <<= 1;
            } else {
              range = (range - bound) | 0;
              code = (code - bound) | 0;
              probs[pi] = prob - (prob >>> 5);
              m = (m << 1) | 1;
              low |= 1 << i;
            }
            if (range >>> 24 === 0) {
              range <<= 8;
              code = (code << 8) | src[inPos++];
            }
          }
          dist = (dist + low) | 0;
        }
        if (dist === K.END_MARKER) {
          marker = true;
          break;
        }
        if (dist < 0 || dist >= dictSize) {
          // Negative: a distance of 2^31 or more.
          this.corrupt(inPos, `match distance ${(dist >>> 0) + 1} exceeds the ${dictSize}-byte dictionary`);
        }
        if (!wrapped && dist >= dictPos) {
          this.corrupt(inPos, `match distance ${dist + 1} exceeds the ${dictPos} bytes decoded so far`);
        }
        rep3 = rep2;
        rep2 = rep1;
        rep1 = rep0;
        rep0 = dist;
      }

      // Copy the match; the part that does not fit before dictLimit is resumed by copyPending.
      let n = dictLimit - dictPos;
      if (n > len) n = len;
      else pending = len - n;
      let s = dictPos - rep0 - 1;
      s += dictSize & (s >> 31);
      const end = dictPos + n;
      if (rep0 === 0) {
        // Run of the previous byte (zeros in diff data): a fill.
        if (n > 16) {
          dict.fill(dict[s], dictPos, end);
          dictPos = end;
        } else {
          const b = dict[s];
          while (dictPos < end) dict[dictPos++] = b;
        }
      } else if (s + n <= dictSize) {
        if (n > 32 && s + n <= dictPos) {
          // Source entirely behind the destination: a memmove.
          dict.copyWithin(dictPos, s, s + n);
          dictPos = end;
        } else {
          // Forward byte copy: an overlapping source (rep0 < len) repeats the pattern as LZ77 requires.
          while (dictPos < end) dict[dictPos++] = dict[s++];
        }
      } else {
        while (dictPos < end) {
          dict[dictPos++] = dict[s++];
          if (s === dictSize) s = 0;
        }
      }
    }

    if (this.inStash) this.stashPos = inPos;
    else this.piecePos = inPos;
    this.range = range;
    this.code = code;
    this.state = state;
    this.rep0 = rep0;
    this.rep1 = rep1;
    this.rep2 = rep2;
    this.rep3 = rep3;
    this.dictPos = dictPos;
    this.pendingLen = pending;
    // Stored unconditionally: a store only on the rare marker path would lack type feedback and
    // deoptimise this function at the end of every stream.
    this.markerSeen = marker;
  }
}

/** dict[from, from+n) -> out[at, at+n); short copies avoid creating a subarray view. */
function copyOut(dict: Uint8Array, from: number, out: Uint8Array, at: number, n: number): void {
  if (n < 64) {
    for (let i = 0; i < n; i++) out[at + i] = dict[from + i];
  } else {
    out.set(dict.subarray(from, from + n), at);
  }
}
