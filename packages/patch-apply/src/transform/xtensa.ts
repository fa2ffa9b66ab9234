// The Xtensa LX106 transform (ESP8266; docs/FORMAT.md, "Transform section"): CALL0 targets and the
// image's address words (the literal pools L32R loads, tables of pointers).
//
// Xtensa instructions are 3 bytes, or 2 with the code density option (op0 = the low nibble of the first
// byte, 8 to 13), so a block is swept from its first byte taking each instruction's length from that
// nibble: a sweep started off an instruction boundary falls into step within a few instructions. A
// CALL0 is a 3-byte instruction whose first byte's low six bits are 000101; its 18-bit offset (bits 6-23)
// counts words from (PC & ~3) + 4. The transform keeps every low nibble and the low six bits, so the
// sweep of a transformed block is the sweep of the original: the NEW side is a bijection on any bytes.
import { mapLabel, type Labels, type Prediction } from './label-map.js';
import { checkOffset, TRANSFORM_BLOCK } from './thumb2.js';

const FIELD_MASK = 0x3_ffff;

/**
 * `visit(s)` for every CALL0 the sweep of buf[b, end) (one block) finds. The sweep reads only the first
 * byte of each instruction, so `visit` may rewrite the rest of the CALL0 it is given.
 */
function sweepBlock(buf: Uint8Array, b: number, end: number, visit: (s: number) => void): void {
  for (let i = b; i + 3 <= end; ) {
    const op0 = buf[i] & 0x0f;
    if (op0 >= 8 && op0 <= 13) {
      i += 2;
      continue;
    }
    if ((buf[i] & 0x3f) === 0x05) visit(i);
    i += 3;
  }
}

/** `visit(s)` for every CALL0 of buf[0, len), block by block (each wholly inside its block). */
function forEachCall0(buf: Uint8Array, len: number, visit: (s: number) => void): void {
  for (let b = 0; b < len; b += TRANSFORM_BLOCK) sweepBlock(buf, b, Math.min(b + TRANSFORM_BLOCK, len), visit);
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
  checkOffset(offset);
  forEachCall0(buf, len, (s) => setField(buf, s, (field(buf, s) + from(offset + s)) & FIELD_MASK));
}

/** The exact inverse of xtensaEncode: the patcher's pass over each restored chunk. */
export function xtensaDecode(buf: Uint8Array, len: number, offset: number): void {
  checkOffset(offset);
  forEachCall0(buf, len, (s) => setField(buf, s, (field(buf, s) - from(offset + s)) & FIELD_MASK));
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
export function forEachXtensaReference(
  buf: Uint8Array,
  len: number,
  offset: number,
  labels: Labels,
  branch: (s: number, x: number) => void,
  word: (w: number, x: number) => void,
): void {
  checkOffset(offset);
  const { base, span } = labels;
  const at0 = (labels.origin - base + offset) | 0;
  for (let b = 0; b < len; b += TRANSFORM_BLOCK) {
    const end = Math.min(b + TRANSFORM_BLOCK, len);
    covered.fill(0);
    sweepBlock(buf, b, end, (s) => {
      for (let k = s - b; k < s - b + 3; k++) covered[k >>> 5] |= 1 << (k & 31);
      branch(s, (at0 + (s & ~3) + 4 + 4 * ((field(buf, s) << 14) >> 14)) | 0);
    });
    for (let w = b; w + 4 <= end; w += 4) {
      // Aligned words are four bits of one scratch word.
      if (((covered[(w - b) >>> 5] >>> ((w - b) & 31)) & 0xf) !== 0) continue;
      const x = ((buf[w] | (buf[w + 1] << 8) | (buf[w + 2] << 16) | (buf[w + 3] << 24)) - base) >>> 0;
      if (x < span) word(w, x);
    }
  }
}

export function xtensaPredict(buf: Uint8Array, len: number, offset: number, p: Prediction): void {
  const { map, base } = p;
  const shift = (p.origin - base) | 0;
  forEachXtensaReference(
    buf,
    len,
    offset,
    p,
    (s, x) => setField(buf, s, (((mapLabel(map, x) - shift) | 0) >>> 2) & FIELD_MASK),
    (w, x) => {
      const y = mapLabel(map, x);
      if (y === x) return;
      const u = (base + y) >>> 0;
      buf[w] = u & 0xff;
      buf[w + 1] = (u >>> 8) & 0xff;
      buf[w + 2] = (u >>> 16) & 0xff;
      buf[w + 3] = u >>> 24;
    },
  );
}
