// What every transform kind shares: the block it works in, and the address-word rewrite of the OLD side.
import { mapLabel, type Labels, type Prediction } from './label-map.js';

/** Transforms work in blocks of this many bytes of the image: a site or word never spans two. */
export const TRANSFORM_BLOCK = 4096;

/**
 * Every transform takes whole blocks from a block boundary (its buffer ends at a block boundary or at
 * the image's end), so that a chunk or a block of OLD is transformed exactly as in the whole image.
 */
export function checkOffset(offset: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || offset % TRANSFORM_BLOCK !== 0)
    throw new RangeError(`transform: image offset ${offset} is not a multiple of ${TRANSFORM_BLOCK}`);
}

/** The little-endian 32-bit word at buf[w]. */
export function wordAt(buf: Uint8Array, w: number): number {
  return (buf[w] | (buf[w + 1] << 8) | (buf[w + 2] << 16) | (buf[w + 3] << 24)) >>> 0;
}

/** OLD side: the address word at buf[w], holding base + x, becomes base + M(x). */
export function predictWord(buf: Uint8Array, w: number, x: number, p: Prediction): void {
  const y = mapLabel(p.map, x);
  if (y === x) return;
  const u = (p.base + y) >>> 0;
  buf[w] = u & 0xff;
  buf[w + 1] = (u >>> 8) & 0xff;
  buf[w + 2] = (u >>> 16) & 0xff;
  buf[w + 3] = u >>> 24;
}

/**
 * The references of buf[0, len) (image offset `offset`, a block boundary) a kind's OLD side rewrites:
 * `branch(s, x)` for each branch site with its target's label x, `word(w, x)` for each address word
 * holding base + x. The generator reads both images through it for its votes.
 */
export type ReferenceScan = (
  buf: Uint8Array,
  len: number,
  offset: number,
  labels: Labels,
  branch: (s: number, x: number) => void,
  word: (w: number, x: number) => void,
) => void;

/** The bytes [a, b) of OLD that predicted bytes [lo, hi) depend on; always inside their blocks. */
export type Dependence = (lo: number, hi: number) => readonly [number, number];

export const blockStartOf = (x: number): number => x - (x % TRANSFORM_BLOCK);
/** One past the end of the block holding byte x - 1 (the last byte of a range ending at x). */
export const blockEndOf = (x: number): number => blockStartOf(x - 1) + TRANSFORM_BLOCK;
