// The ARM Thumb-2 transform (docs/FORMAT.md, "Transform section"): pure functions over one buffer of
// image bytes, in place, working block by block so that any chunk (or block of OLD) is transformed
// without its neighbours.
//
// Sites are 32-bit BL and unconditional B.W instructions with J1 = J2 = 1 (every such branch within
// +-4 MiB, i.e. all of them in a microcontroller image): first halfword 11110xxx xxxxxxxx, second
// 1x111xxx xxxxxxxx. The test reads only the top five bits of each halfword and the transform changes
// only the low eleven, so a transformed buffer has exactly the sites of the original: the NEW-side
// transform is a bijection on any bytes. No two sites overlap (a second halfword has bit 11 set, a first
// has it clear), so the sites do not depend on where parsing starts.
import { blockEndOf, blockStartOf, checkOffset, predictWord, TRANSFORM_BLOCK, wordAt, type Dependence, type ReferenceScan } from './block.js';
import { mapLabel, type Prediction } from './label-map.js';
const FIELD_MASK = 0x3f_ffff;

/** Whether a Thumb-2 branch site starts at buf[s] (the caller keeps s + 4 inside the block). */
function isSite(buf: Uint8Array, s: number): boolean {
  return (buf[s + 1] & 0xf8) === 0xf0 && (buf[s + 3] & 0xb8) === 0xb8;
}

/** The 22-bit immediate S:imm10:imm11 of the site at s (a signed halfword offset from s + 4). */
function field(buf: Uint8Array, s: number): number {
  return ((buf[s + 1] & 0x07) << 19) | (buf[s] << 11) | ((buf[s + 3] & 0x07) << 8) | buf[s + 2];
}

function setField(buf: Uint8Array, s: number, v: number): void {
  buf[s + 1] = (buf[s + 1] & 0xf8) | ((v >>> 19) & 0x07);
  buf[s] = (v >>> 11) & 0xff;
  buf[s + 3] = (buf[s + 3] & 0xf8) | ((v >>> 8) & 0x07);
  buf[s + 2] = v & 0xff;
}

/**
 * Calls `visit(s)` for every site in buf[0, len), whose first byte is image offset `offset` (a block
 * boundary). A block at a time: a site lies wholly inside one block and inside [0, len).
 */
function forEachSite(buf: Uint8Array, len: number, visit: (s: number) => void): void {
  for (let b = 0; b < len; b += TRANSFORM_BLOCK) {
    const end = Math.min(b + TRANSFORM_BLOCK, len) - 3;
    for (let s = b; s < end; s += 2)
      if (isSite(buf, s)) {
        visit(s);
        s += 2; // the site's second halfword (bit 11 set) is never a first
      }
  }
}

/** NEW side, before diffing: each branch's offset becomes its target (in halfwords, modulo 2^22). */
export function thumb2Encode(buf: Uint8Array, len: number, offset: number): void {
  checkOffset(offset);
  forEachSite(buf, len, (s) => setField(buf, s, (field(buf, s) + ((offset + s + 4) >>> 1)) & FIELD_MASK));
}

/** The exact inverse of thumb2Encode: the patcher's pass over each restored chunk. */
export function thumb2Decode(buf: Uint8Array, len: number, offset: number): void {
  checkOffset(offset);
  forEachSite(buf, len, (s) => setField(buf, s, (field(buf, s) - ((offset + s + 4) >>> 1)) & FIELD_MASK));
}

/**
 * The references of buf[0, len) (image offset `offset`, a block boundary) that the OLD side rewrites:
 * `branch(s, x)` for each branch site, with its target's label x (origin + target offset − base, any
 * 32-bit value), and `word(w, x)` for each aligned 32-bit word at buf[w] holding an address base + x
 * with x < span (the image's own addresses) and overlapping no branch site of its block. One pass, two
 * halfwords at a time; each decision is made on the bytes as they were, so the callbacks may rewrite
 * what they are given: a branch rewrite keeps every opcode bit, and a word's own bytes are read by no
 * later decision (the site test at w + 2 that reads its last byte is made before it is reported, and
 * carried to the next word).
 */
export const forEachThumb2Reference: ReferenceScan = (buf, len, offset, labels, branch, word) => {
  checkOffset(offset);
  const { base, span } = labels;
  const at0 = (labels.origin - base + offset) | 0;
  for (let b = 0; b < len; b += TRANSFORM_BLOCK) {
    const end = Math.min(b + TRANSFORM_BLOCK, len);
    let before = false; // a site at w - 2
    for (let w = b; w + 4 <= end; w += 4) {
      const at = isSite(buf, w);
      const next = !at && w + 6 <= end && isSite(buf, w + 2);
      if (at) branch(w, (at0 + w + 4 + 2 * ((field(buf, w) << 10) >> 10)) | 0);
      else if (next) branch(w + 2, (at0 + w + 6 + 2 * ((field(buf, w + 2) << 10) >> 10)) | 0);
      else if (!before) {
        const x = (wordAt(buf, w) - base) >>> 0;
        if (x < span) word(w, x);
      }
      before = next;
    }
  }
};

/**
 * OLD side, the patcher's view of its source: OLD's bytes with every reference rewritten as the package
 * predicts NEW has it. A branch becomes its target carried through the map (in thumb2Encode's form);
 * an address word becomes that address carried through the map.
 */
export function thumb2Predict(buf: Uint8Array, len: number, offset: number, p: Prediction): void {
  const shift = (p.origin - p.base) | 0;
  forEachThumb2Reference(
    buf,
    len,
    offset,
    p,
    // Back from a label to an image offset: the form thumb2Encode gives NEW's branches.
    (s, x) => setField(buf, s, (((mapLabel(p.map, x) - shift) | 0) >> 1) & FIELD_MASK),
    (w, x) => predictWord(buf, w, x, p),
  );
}

/**
 * A predicted byte depends on its aligned word and the halfwords either side (the word is a site, holds
 * the first half of one at w + 2, or follows one at w - 2): bytes [w - 2, w + 6) of its block. 8 bytes
 * either side cover that for any range.
 */
export const thumb2Dependence: Dependence = (lo, hi) => [Math.max(blockStartOf(lo), lo - 8), Math.min(blockEndOf(hi), hi + 8)];
