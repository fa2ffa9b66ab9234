// The otadiff package header and chunk table (docs/FORMAT.md is the normative description).
import { crc32 } from './crc32.js';
import { PackageError } from './package-error.js';

export const MAGIC = 0x4441544f; // "OTAD" read as little-endian u32
export const DIFF_VERSION = 1;
export const FIXED_HEADER_BYTES = 128;
export const CHUNK_ENTRY_BYTES = 16;
export const HEADER_CRC_BYTES = 4;
/** Split sizes are multiples of this (the common NOR sector size), so every chunk starts on a sector. */
export const SPLIT_ALIGN = 4096;
export const MAX_SPLIT_SIZE = 1 << 24;
export const MIN_DICT_SIZE = 4096;
export const MAX_DICT_SIZE = 1 << 28;
/** Largest signature block the format allows (RSA-4096 plus room for a key id and certificate digest). */
export const MAX_SIGNATURE_BYTES = 4096;

export type PatchMode = 'inplace' | 'ab';
export const COMPRESSION_LZMA = 1;

export interface LzmaParams {
  lc: number;
  lp: number;
  pb: number;
  dictSize: number;
}

export interface ChunkEntry {
  /** Offset of the record from the end of the header. */
  recordOffset: number;
  recordLength: number;
  /** Length of the decompressed command stream. */
  rawLength: number;
  /** CRC-32 (IEEE) of the chunk's new bytes. */
  crc32: number;
}

export interface PackageHeader {
  diffVersion: number;
  mode: PatchMode;
  splitSize: number;
  oldSize: number;
  newSize: number;
  oldSha256: Uint8Array;
  newSha256: Uint8Array;
  lzma: LzmaParams;
  signatureType: number;
  signatureLength: number;
  /** Sum of all record lengths. */
  payloadLength: number;
  chunks: ChunkEntry[];
  /** Bytes from the start of the package to the first record. */
  headerLength: number;
}

/** What a caller is willing to allocate; a package asking for more is refused before any allocation. */
export interface PatcherLimits {
  maxDictSize: number;
  maxSplitSize: number;
  maxImageSize: number;
}

export const DEFAULT_LIMITS: PatcherLimits = {
  maxDictSize: 8 << 20,
  maxSplitSize: MAX_SPLIT_SIZE,
  maxImageSize: 0x7fff_0000,
};

export function chunkCountFor(newSize: number, splitSize: number): number {
  return Math.ceil(newSize / splitSize);
}

export function headerLengthFor(chunkCount: number): number {
  return FIXED_HEADER_BYTES + chunkCount * CHUNK_ENTRY_BYTES + HEADER_CRC_BYTES;
}

/** Total package length the header declares. */
export function packageLength(h: PackageHeader): number {
  return h.headerLength + h.payloadLength + h.signatureLength;
}

/** Length of chunk `index` of the new image. */
export function chunkLength(h: Pick<PackageHeader, 'newSize' | 'splitSize'>, index: number): number {
  return Math.min(h.splitSize, h.newSize - index * h.splitSize);
}

/**
 * Bytes of the source window chunk `index` may reference. In `inplace` mode the window is
 * new[0, i*S) ++ old[i*S, oldSize): the partition as it stands when chunk i is restored.
 */
export function windowLength(h: Pick<PackageHeader, 'mode' | 'oldSize' | 'splitSize'>, index: number): number {
  return h.mode === 'ab' ? h.oldSize : Math.max(index * h.splitSize, h.oldSize);
}

/**
 * Largest decompressed command stream a chunk of `len` bytes may declare: every command emits at least
 * one byte and costs at most 4 five-byte numbers, and a changed byte inside a copy costs 2 bytes.
 */
export function maxRawLength(len: number): number {
  return len * 22 + 16;
}

export function propsByte(p: { lc: number; lp: number; pb: number }): number {
  return (p.pb * 5 + p.lp) * 9 + p.lc;
}

export function encodeHeader(h: Omit<PackageHeader, 'headerLength' | 'diffVersion' | 'payloadLength'>): Uint8Array {
  const count = h.chunks.length;
  const headerLength = headerLengthFor(count);
  const out = new Uint8Array(headerLength);
  const v = new DataView(out.buffer);
  let payload = 0;
  for (const c of h.chunks) payload += c.recordLength;
  v.setUint32(0, MAGIC, true);
  v.setUint16(4, DIFF_VERSION, true);
  v.setUint16(6, h.mode === 'ab' ? 1 : 0, true);
  v.setUint32(8, headerLength, true);
  v.setUint32(12, h.splitSize, true);
  v.setUint32(16, h.oldSize, true);
  v.setUint32(20, h.newSize, true);
  v.setUint32(24, count, true);
  v.setUint8(28, COMPRESSION_LZMA);
  v.setUint8(29, propsByte(h.lzma));
  v.setUint32(32, h.lzma.dictSize, true);
  v.setUint32(36, h.signatureLength, true);
  v.setUint16(40, h.signatureType, true);
  out.set(h.oldSha256, 44);
  out.set(h.newSha256, 76);
  v.setUint32(108, payload, true);
  let off = FIXED_HEADER_BYTES;
  for (const c of h.chunks) {
    v.setUint32(off, c.recordOffset, true);
    v.setUint32(off + 4, c.recordLength, true);
    v.setUint32(off + 8, c.rawLength, true);
    v.setUint32(off + 12, c.crc32 >>> 0, true);
    off += CHUNK_ENTRY_BYTES;
  }
  v.setUint32(off, crc32(out.subarray(0, off)) >>> 0, true);
  return out;
}

/** The fixed part of a header, validated against `limits`; the chunk table is not read yet. */
export interface FixedHeader extends Omit<PackageHeader, 'chunks'> {
  chunkCount: number;
}

function fail(code: ConstructorParameters<typeof PackageError>[0], msg: string): never {
  throw new PackageError(code, msg);
}

/** Parses and validates the first FIXED_HEADER_BYTES of a package. */
export function parseFixedHeader(bytes: Uint8Array, limits: PatcherLimits = DEFAULT_LIMITS): FixedHeader {
  if (bytes.length < FIXED_HEADER_BYTES) fail('truncated', `package is shorter than its ${FIXED_HEADER_BYTES}-byte header`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, FIXED_HEADER_BYTES);
  if (v.getUint32(0, true) !== MAGIC) fail('bad-magic', 'not an otadiff package (bad magic)');
  const diffVersion = v.getUint16(4, true);
  if (diffVersion !== DIFF_VERSION) fail('unsupported-version', `unsupported diff_version ${diffVersion} (this patcher reads ${DIFF_VERSION})`);
  const flags = v.getUint16(6, true);
  if (flags > 1) fail('bad-header', `unknown flags 0x${flags.toString(16)}`);
  const mode: PatchMode = flags === 1 ? 'ab' : 'inplace';
  const headerLength = v.getUint32(8, true);
  const splitSize = v.getUint32(12, true);
  const oldSize = v.getUint32(16, true);
  const newSize = v.getUint32(20, true);
  const chunkCount = v.getUint32(24, true);
  const compression = v.getUint8(28);
  const props = v.getUint8(29);
  const reserved30 = v.getUint16(30, true);
  const dictSize = v.getUint32(32, true);
  const signatureLength = v.getUint32(36, true);
  const signatureType = v.getUint16(40, true);
  const reserved42 = v.getUint16(42, true);
  const payloadLength = v.getUint32(108, true);

  if (splitSize < SPLIT_ALIGN || splitSize % SPLIT_ALIGN !== 0 || splitSize > MAX_SPLIT_SIZE)
    fail('bad-header', `split size ${splitSize} is not a multiple of ${SPLIT_ALIGN} in [${SPLIT_ALIGN}, ${MAX_SPLIT_SIZE}]`);
  if (splitSize > limits.maxSplitSize) fail('limit-exceeded', `split size ${splitSize} exceeds this device's limit ${limits.maxSplitSize}`);
  if (oldSize > limits.maxImageSize || newSize > limits.maxImageSize)
    fail('limit-exceeded', `image size (old ${oldSize}, new ${newSize}) exceeds the limit ${limits.maxImageSize}`);
  if (chunkCount !== chunkCountFor(newSize, splitSize))
    fail('bad-header', `chunk count ${chunkCount} does not match new size ${newSize} / split ${splitSize}`);
  if (headerLength !== headerLengthFor(chunkCount)) fail('bad-header', `header length ${headerLength} does not match ${chunkCount} chunks`);
  if (compression !== COMPRESSION_LZMA) fail('bad-header', `unknown compression ${compression}`);
  if (props > 224) fail('bad-header', `invalid LZMA properties byte ${props}`);
  const lc = props % 9;
  const lp = Math.floor(props / 9) % 5;
  const pb = Math.floor(props / 45);
  if (lc + lp > 4) fail('bad-header', `LZMA lc+lp = ${lc + lp} exceeds 4`);
  if (dictSize < MIN_DICT_SIZE || dictSize > MAX_DICT_SIZE) fail('bad-header', `LZMA dictionary size ${dictSize} is out of range`);
  if (dictSize > limits.maxDictSize)
    fail('limit-exceeded', `package needs a ${dictSize}-byte LZMA dictionary; this device allows ${limits.maxDictSize}`);
  if (reserved30 !== 0 || reserved42 !== 0) fail('bad-header', 'reserved header fields are not zero');
  for (let i = 112; i < FIXED_HEADER_BYTES; i++) if (bytes[i] !== 0) fail('bad-header', 'reserved header bytes are not zero');
  if (signatureLength > MAX_SIGNATURE_BYTES) fail('bad-header', `signature block of ${signatureLength} bytes exceeds ${MAX_SIGNATURE_BYTES}`);
  if ((signatureType === 0) !== (signatureLength === 0)) fail('bad-header', 'signature type and length disagree');
  return {
    diffVersion,
    mode,
    splitSize,
    oldSize,
    newSize,
    oldSha256: bytes.slice(44, 76),
    newSha256: bytes.slice(76, 108),
    lzma: { lc, lp, pb, dictSize },
    signatureType,
    signatureLength,
    payloadLength,
    headerLength,
    chunkCount,
  };
}

/**
 * Validates the chunk table (`table` = bytes FIXED_HEADER_BYTES..headerLength of the package, CRC included).
 * `headerCrc` is the CRC-32 of the fixed header, so that a streaming reader need not keep it.
 */
export function parseChunkTable(fixed: FixedHeader, table: Uint8Array, fixedBytes: Uint8Array): PackageHeader {
  const count = fixed.chunkCount;
  const tableBytes = count * CHUNK_ENTRY_BYTES;
  if (table.length !== tableBytes + HEADER_CRC_BYTES) fail('truncated', 'chunk table is truncated');
  const v = new DataView(table.buffer, table.byteOffset, table.length);
  const stored = v.getUint32(tableBytes, true);
  const actual = crc32(table.subarray(0, tableBytes), crc32(fixedBytes.subarray(0, FIXED_HEADER_BYTES))) >>> 0;
  if (stored !== actual) fail('header-checksum', 'header checksum mismatch (corrupt package)');
  const chunks: ChunkEntry[] = new Array(count);
  let expectedOffset = 0;
  for (let i = 0; i < count; i++) {
    const o = i * CHUNK_ENTRY_BYTES;
    const recordOffset = v.getUint32(o, true);
    const recordLength = v.getUint32(o + 4, true);
    const rawLength = v.getUint32(o + 8, true);
    const crc = v.getUint32(o + 12, true);
    // Records are contiguous and in chunk order: no gaps, no overlaps, nothing past the payload.
    if (recordOffset !== expectedOffset) fail('bad-chunk-table', `chunk ${i}: record offset ${recordOffset}, expected ${expectedOffset}`);
    if (recordLength === 0) fail('bad-chunk-table', `chunk ${i}: empty record`);
    const len = chunkLength(fixed, i);
    if (rawLength === 0 || rawLength > maxRawLength(len))
      fail('bad-chunk-table', `chunk ${i}: command stream length ${rawLength} is impossible for a ${len}-byte chunk`);
    expectedOffset += recordLength;
    if (expectedOffset > fixed.payloadLength) fail('bad-chunk-table', `chunk ${i}: record runs past the payload`);
    chunks[i] = { recordOffset, recordLength, rawLength, crc32: crc };
  }
  if (expectedOffset !== fixed.payloadLength)
    fail('bad-chunk-table', `records add up to ${expectedOffset} bytes, header says ${fixed.payloadLength}`);
  const { chunkCount: _unused, ...rest } = fixed;
  return { ...rest, chunks };
}

/** Parses a whole header held in memory (`bytes` may be the whole package). */
export function parseHeader(bytes: Uint8Array, limits: PatcherLimits = DEFAULT_LIMITS): PackageHeader {
  const fixed = parseFixedHeader(bytes, limits);
  if (bytes.length < fixed.headerLength) fail('truncated', `package is shorter than its ${fixed.headerLength}-byte header`);
  return parseChunkTable(fixed, bytes.subarray(FIXED_HEADER_BYTES, fixed.headerLength), bytes);
}
