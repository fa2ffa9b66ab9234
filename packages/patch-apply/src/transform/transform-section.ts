// The transform section of a diff_version 3 header: which transform the package uses, with what, and on
// which chunks (docs/FORMAT.md, "Transform section"). It sits between the chunk table and the header
// CRC, so the signature covers it.
import { PackageError } from '../package-error.js';
import type { TransformKind } from './codecs.js';
import { decodeLabelMap, encodeLabelMap, encodedLabelMapLength, MAX_LABEL_SPAN, type LabelMap } from './label-map.js';

export type { TransformKind } from './codecs.js';
const KIND_CODES: Readonly<Record<TransformKind, number>> = { thumb2: 1, xtensa: 2 };

/** Bytes of the section before its chunk bitmap: kind, 3 reserved, base, span, origin, segment count. */
export const TRANSFORM_FIXED_BYTES = 20;
/** Default for PatcherLimits.maxMapEntries: 4096 segments, 32 KiB of RAM (the corpus needs < 300). */
export const DEFAULT_MAX_MAP_ENTRIES = 4096;
/** Most bytes one segment may take (two 5-byte numbers). */
const MAX_SEGMENT_BYTES = 10;

export interface PackageTransform {
  kind: TransformKind;
  /**
   * Addresses base + x with x < span are the image's own: such a word (and, for Thumb-2, a branch
   * target x) is a label the map carries. Thumb-2: base is the load address of image offset 0.
   */
  base: number;
  span: number;
  /** The address image offset 0 runs at (a branch's target label is origin + its image offset − base). */
  origin: number;
  /** Bit i % 8 of byte i / 8: chunk i is restored through the transform; the others are plain. */
  chunkMask: Uint8Array;
  map: LabelMap;
}

export function chunkTransformed(t: PackageTransform | null | undefined, index: number): boolean {
  return t != null && (t.chunkMask[index >>> 3] & (1 << (index & 7))) !== 0;
}

export function chunkMaskBytes(chunkCount: number): number {
  return (chunkCount + 7) >>> 3;
}

/** A chunk bitmap with the chunks `transformed(i)` says. */
export function chunkMaskOf(chunkCount: number, transformed: (i: number) => boolean): Uint8Array {
  const mask = new Uint8Array(chunkMaskBytes(chunkCount));
  for (let i = 0; i < chunkCount; i++) if (transformed(i)) mask[i >>> 3] |= 1 << (i & 7);
  return mask;
}

export function transformSectionLength(t: PackageTransform, chunkCount: number): number {
  return TRANSFORM_FIXED_BYTES + chunkMaskBytes(chunkCount) + encodedLabelMapLength(t.map);
}

/** Shortest and longest section a header of `chunkCount` chunks may declare under `maxMapEntries`. */
export function transformSectionBounds(chunkCount: number, maxMapEntries: number): { min: number; max: number } {
  const min = TRANSFORM_FIXED_BYTES + chunkMaskBytes(chunkCount);
  return { min, max: min + MAX_SEGMENT_BYTES * maxMapEntries };
}

export function encodeTransformSection(t: PackageTransform, chunkCount: number, out: Uint8Array, at: number): number {
  if (t.chunkMask.length !== chunkMaskBytes(chunkCount)) throw new RangeError(`transform chunk mask has ${t.chunkMask.length} bytes for ${chunkCount} chunks`);
  if (!Number.isInteger(t.base) || t.base < 0 || !Number.isInteger(t.span) || t.span < 1 || t.span > MAX_LABEL_SPAN || t.base + t.span > 2 ** 32)
    throw new RangeError('transform base and span must give a range of 32-bit addresses, at most 2^31 of them');
  if (!Number.isInteger(t.origin) || t.origin < 0 || t.origin > 0xffff_ffff) throw new RangeError('transform origin must be a 32-bit address');
  const v = new DataView(out.buffer, out.byteOffset, out.length);
  v.setUint8(at, KIND_CODES[t.kind]);
  v.setUint32(at + 4, t.base, true);
  v.setUint32(at + 8, t.span, true);
  v.setUint32(at + 12, t.origin, true);
  v.setUint32(at + 16, t.map.starts.length, true);
  at += TRANSFORM_FIXED_BYTES;
  out.set(t.chunkMask, at);
  return encodeLabelMap(t.map, out, at + t.chunkMask.length);
}

export interface SectionContext {
  mode: string;
  chunkCount: number;
  maxMapEntries: number;
}

/** Parses and validates a whole section (exactly `bytes`). */
export function parseTransformSection(bytes: Uint8Array, c: SectionContext): PackageTransform {
  const fail = (code: 'bad-header' | 'limit-exceeded', msg: string): never => {
    throw new PackageError(code, `transform section: ${msg}`);
  };
  if (c.mode === 'raw') fail('bad-header', 'a raw package has no transform');
  const { min } = transformSectionBounds(c.chunkCount, 0);
  if (bytes.length < min) fail('bad-header', `${bytes.length} bytes, shorter than its ${min}-byte fixed part and chunk bitmap`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const code = v.getUint8(0);
  const kind = (Object.keys(KIND_CODES) as TransformKind[]).find((k) => KIND_CODES[k] === code);
  if (kind === undefined) fail('bad-header', `unknown transform ${code}`);
  if (v.getUint8(1) !== 0 || v.getUint16(2, true) !== 0) fail('bad-header', 'reserved bytes are not zero');
  const base = v.getUint32(4, true);
  const span = v.getUint32(8, true);
  if (span === 0 || base + span > 2 ** 32) fail('bad-header', `addresses [0x${base.toString(16)}, +${span}) are no range of 32-bit addresses`);
  if (span > MAX_LABEL_SPAN) fail('bad-header', `a span of ${span} addresses exceeds 2^31 labels`);
  const origin = v.getUint32(12, true);
  const count = v.getUint32(16, true);
  if (count > c.maxMapEntries) fail('limit-exceeded', `a map of ${count} segments exceeds this device's limit of ${c.maxMapEntries}`);
  const maskBytes = chunkMaskBytes(c.chunkCount);
  const chunkMask = bytes.slice(TRANSFORM_FIXED_BYTES, TRANSFORM_FIXED_BYTES + maskBytes);
  // Padding bits past the last chunk are zero; at least one chunk uses the transform.
  const spare = maskBytes * 8 - c.chunkCount;
  if (spare > 0 && chunkMask[maskBytes - 1] >>> (8 - spare) !== 0) fail('bad-header', 'chunk bitmap has bits set past the last chunk');
  if (chunkMask.every((b) => b === 0)) fail('bad-header', 'no chunk uses the transform');
  const map = decodeLabelMap(bytes.subarray(TRANSFORM_FIXED_BYTES + maskBytes), count, span);
  return { kind: kind!, base, span, origin, chunkMask, map };
}
