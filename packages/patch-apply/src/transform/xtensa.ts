// The Xtensa LX106 transform (ESP8266; docs/FORMAT.md, "Transform section"): CALL0 targets and the
// image's address words (the literal pools L32R loads, tables of pointers).
//
// Xtensa instructions are 3 bytes, or 2 with the code density option (op0 = the low nibble of the first
// byte, 8 to 13), so a block is swept from its first byte taking each instruction's length from that
// nibble: a sweep started off an instruction boundary falls into step within a few instructions. A
// CALL0 is a 3-byte instruction whose first byte's low six bits are 000101; its 18-bit offset (bits 6-23)
// counts words from (PC & ~3) + 4. The transform keeps every low nibble and the low six bits, so the
// sweep of a transformed block is the sweep of the original: the NEW side is a bijection on any bytes.
import { blockEndOf, blockStartOf, checkOffset, predictWord, TRANSFORM_BLOCK, wordAt, type Dependence, type ReferenceScan } from './block.js';
import { mapLabel, type Prediction } from './label-map.js';

const FIELD_MASK = 0x3_ffff;

/** Length of an instruction by its op0 (the low nibble of its first byte): 2 for 8-13 (code density), else 3. */
const LENGTH = Uint8Array.from({ length: 16 }, (_, op0) => (op0 >= 8 && op0 <= 13 ? 2 : 3));

/** Whether an instruction whose first byte is `c` (and which is 3 bytes) is a CALL0. */
const isCall0 = (c: number): boolean => (c & 0x3f) === 0x05;

/** Shifts every CALL0 field of buf[0, len) by ±((s >> 2) + 1): the NEW-side encoding and its inverse. */
function shiftCalls(buf: Uint8Array, len: number, offset: number, sign: 1 | -1): void {
  checkOffset(offset);
  for (let b = 0; b < len; b += TRANSFORM_BLOCK) {
    const end = Math.min(b + TRANSFORM_BLOCK, len) - 3;
    for (let i = b; i <= end; ) {
      const c = buf[i];
      if (isCall0(c)) setField(buf, i, (field(buf, i) + sign * from(offset + i)) & FIELD_MASK);
      i += LENGTH[c & 0x0f];
    }
  }
}

const field = (buf: Uint8Array, s: number): number => (buf[s] >>> 6) | (buf[s + 1] << 2) | (buf[s + 2] << 10);

function setField(buf: Uint8Array, s: number, v: number): void {
  buf[s] = (buf[s] & 0x3f) | ((v & 3) << 6);
  buf[s + 1] = (v >>> 2) & 0xff;
  buf[s + 2] = (v >>> 10) & 0xff;
}

/** (PC & ~3) / 4 + 1 of a CALL0 at image offset s: what its offset counts words from. */
const from = (s: number): number => ((s >>> 2) + 1) & FIELD_MASK;

/** NEW side, before diffing: each CALL0's offset becomes its target word (image offset / 4, modulo 2^18). */
export function xtensaEncode(buf: Uint8Array, len: number, offset: number): void {
  shiftCalls(buf, len, offset, 1);
}

/** The exact inverse of xtensaEncode: the patcher's pass over each restored chunk. */
export function xtensaDecode(buf: Uint8Array, len: number, offset: number): void {
  shiftCalls(buf, len, offset, -1);
}

/** Scratch: the bytes a block's CALL0s cover, a bit each (counted in the predicted source's RAM). */
export const XTENSA_SCRATCH_BYTES = TRANSFORM_BLOCK / 8;
const covered = new Uint32Array(XTENSA_SCRATCH_BYTES / 4);

/**
 * The references the OLD side rewrites: `branch(s, x)` for each CALL0 with its target's label x
 * (origin + target offset − base), then `word(w, x)` for each aligned word holding base + x, x < span,
 * that overlaps no CALL0 of its block. Decided on the bytes as they are (a CALL0's rewrite keeps the
 * byte the sweep reads, and no word reported overlaps one), so the callbacks may rewrite them.
 */
export const forEachXtensaReference: ReferenceScan = (buf, len, offset, labels, branch, word) => {
  checkOffset(offset);
  const { base, span } = labels;
  const at0 = (labels.origin - base + offset) | 0;
  for (let b = 0; b < len; b += TRANSFORM_BLOCK) {
    const end = Math.min(b + TRANSFORM_BLOCK, len);
    covered.fill(0);
    // The sweep (a CALL0's rewrite keeps the byte it reads), marking the bytes each CALL0 covers.
    for (let i = b; i + 3 <= end; ) {
      const c = buf[i];
      if (isCall0(c)) {
        for (let k = i - b; k < i - b + 3; k++) covered[k >>> 5] |= 1 << (k & 31);
        branch(i, (at0 + (i & ~3) + 4 + 4 * ((field(buf, i) << 14) >> 14)) | 0);
      }
      i += LENGTH[c & 0x0f];
    }
    for (let w = b; w + 4 <= end; w += 4) {
      // Aligned words are four bits of one scratch word.
      if (((covered[(w - b) >>> 5] >>> ((w - b) & 31)) & 0xf) !== 0) continue;
      const x = (wordAt(buf, w) - base) >>> 0;
      if (x < span) word(w, x);
    }
  }
};

export function xtensaPredict(buf: Uint8Array, len: number, offset: number, p: Prediction): void {
  const shift = (p.origin - p.base) | 0;
  forEachXtensaReference(
    buf,
    len,
    offset,
    p,
    (s, x) => setField(buf, s, (((mapLabel(p.map, x) - shift) | 0) >>> 2) & FIELD_MASK),
    (w, x) => predictWord(buf, w, x, p),
  );
}

/**
 * A predicted byte depends on the sweep that reached it (every byte from its block's start: instruction
 * lengths), the CALL0 holding it and its aligned word with any CALL0 overlapping that word (up to 6 bytes
 * past the word): bytes from its block's start to 8 past it. (Sweeping pieces of a block from their own
 * starts would shorten that, but measured 0.74-0.79x bsdiff on the ESP8266 pairs against 0.73x.)
 */
export const xtensaDependence: Dependence = (lo, hi) => [blockStartOf(lo), Math.min(blockEndOf(hi), hi + 8)];
