// The otadiff package header and chunk table (docs/FORMAT.md is the normative description).
import { crc32 } from './crc32.js';
import { PackageError } from './package-error.js';
import {
  DEFAULT_MAX_MAP_ENTRIES,
  encodeTransformSection,
  parseTransformSection,
  transformSectionBounds,
  transformSectionLength,
  type PackageTransform,
} from './transform/transform-section.js';

export const MAGIC = 0x4441544f; // "OTAD" read as little-endian u32
/** The newest diff_version: a transform section after the chunk table (docs/FORMAT.md). */
export const DIFF_VERSION = 3;
/** Packages without a transform keep diff_version 2, which every earlier patcher reads too. */
export const PLAIN_DIFF_VERSION = 2;
export const FIXED_HEADER_BYTES = 176;
export const CHUNK_ENTRY_BYTES = 16;
export const HEADER_CRC_BYTES = 4;
/** Split sizes are multiples of this (the common NOR sector size), so every chunk starts on a sector. */
export const SPLIT_ALIGN = 4096;
export const MAX_SPLIT_SIZE = 1 << 24;
export const MIN_DICT_SIZE = 4096;
export const MAX_DICT_SIZE = 1 << 28;
/** Bytes of the firmware-version field (printable ASCII, NUL-padded). */
export const FIRMWARE_VERSION_BYTES = 32;

/** `inplace` and `ab` are deltas (LZMA records); `raw` is the full image (OTA_RAW), stored chunk by chunk. */
export type PatchMode = 'inplace' | 'ab' | 'raw';
export const COMPRESSION_STORED = 0;
export const COMPRESSION_LZMA = 1;
const MODE_CODES: readonly PatchMode[] = ['inplace', 'ab', 'raw'];
/** Flag bit: the owner allows this package to go below the device's recorded security counter. */
export const FLAG_ALLOW_DOWNGRADE = 1;

/** Signature algorithms of the signature block, by `sig_type`. */
export const SignatureType = {
  none: 0,
  ed25519: 1,
  ecdsaP256: 2,
  rsa2048: 3,
} as const;
export type SignatureAlgorithm = Exclude<keyof typeof SignatureType, 'none'>;
/** Exact signature block length for each algorithm (ECDSA as raw r||s). */
export const SIGNATURE_BYTES: Readonly<Record<SignatureAlgorithm, number>> = { ed25519: 64, ecdsaP256: 64, rsa2048: 256 };

export function signatureAlgorithmOf(type: number): SignatureAlgorithm | null {
  for (const k of Object.keys(SIGNATURE_BYTES) as SignatureAlgorithm[]) if (SignatureType[k] === type) return k;
  return null;
}

export interface LzmaParams {
  lc: number;
  lp: number;
  pb: number;
  dictSize: number;
}

/** `raw` packages store chunks as they are: no LZMA, no dictionary. */
export const STORED_PARAMS: LzmaParams = { lc: 0, lp: 0, pb: 0, dictSize: 0 };

export interface ChunkEntry {
  /** Offset of the record from the start of the records (after the header and the signature block). */
  recordOffset: number;
  recordLength: number;
  /** Length of the decompressed command stream (`raw`: the chunk length). */
  rawLength: number;
  /** CRC-32 (IEEE) of the chunk's new bytes. */
  crc32: number;
}

/** What the owner states about the release; all of it is covered by the signature. */
export interface ReleaseInfo {
  /** Firmware version of NEW (printable ASCII, at most 32 bytes; may be empty). */
  firmwareVersion: string;
  /** Monotonic anti-rollback counter of NEW. */
  securityCounter: number;
  /** The owner allows installing this package below the device's recorded security counter. */
  allowDowngrade: boolean;
}

export interface PackageHeader extends ReleaseInfo {
  diffVersion: number;
  mode: PatchMode;
  splitSize: number;
  /** 0 for `raw`. */
  oldSize: number;
  newSize: number;
  /** All zero for `raw`. */
  oldSha256: Uint8Array;
  newSha256: Uint8Array;
  /** `STORED_PARAMS` for `raw`. */
  lzma: LzmaParams;
  signatureType: number;
  signatureLength: number;
  /** Sum of all record lengths. */
  payloadLength: number;
  /** SHA-256 of the records (the payload), so that the signed header covers every byte the restore reads. */
  payloadSha256: Uint8Array;
  chunks: ChunkEntry[];
  /** The executable-aware transform some chunks are restored through (diff_version 3); null for none. */
  transform: PackageTransform | null;
  /** Bytes of the signed part: fixed header + chunk table (+ transform section) + header CRC. */
  headerLength: number;
}

/** What a caller is willing to allocate; a package asking for more is refused before any allocation. */
export interface PatcherLimits {
  maxDictSize: number;
  maxSplitSize: number;
  maxImageSize: number;
  /** Most segments of a transform's label map (8 bytes of RAM each); default DEFAULT_MAX_MAP_ENTRIES. */
  maxMapEntries?: number;
}

export const DEFAULT_LIMITS: PatcherLimits = {
  maxDictSize: 8 << 20,
  maxSplitSize: MAX_SPLIT_SIZE,
  maxImageSize: 0x7fff_0000,
  maxMapEntries: DEFAULT_MAX_MAP_ENTRIES,
};

export function chunkCountFor(newSize: number, splitSize: number): number {
  return Math.ceil(newSize / splitSize);
}

export function headerLengthFor(chunkCount: number): number {
  return FIXED_HEADER_BYTES + chunkCount * CHUNK_ENTRY_BYTES + HEADER_CRC_BYTES;
}

/** Offset of record 0 from the start of the package: the signed header, then the signature block. */
export function recordsOffset(h: Pick<PackageHeader, 'headerLength' | 'signatureLength'>): number {
  return h.headerLength + h.signatureLength;
}

/** Total package length the header declares. */
export function packageLength(h: Pick<PackageHeader, 'headerLength' | 'payloadLength' | 'signatureLength'>): number {
  return h.headerLength + h.payloadLength + h.signatureLength;
}

/** Length of chunk `index` of the new image. */
export function chunkLength(h: Pick<PackageHeader, 'newSize' | 'splitSize'>, index: number): number {
  return Math.min(h.splitSize, h.newSize - index * h.splitSize);
}

/**
 * Where the source window of chunk `index` switches from new bytes to old ones. In `inplace` mode the
 * restore writes chunk i-1 over its region only after chunk i is decoded (it waits in the backup
 * partition), so chunk i still sees the old bytes of region i-1: window = new[0, B) ++ old[B, oldSize)
 * with B = (i-1)*S. Firmware that grows pushes code forward by less than a chunk; this lookback keeps
 * it reachable.
 */
export function windowBoundary(h: Pick<PackageHeader, 'mode' | 'splitSize'>, index: number): number {
  return h.mode === 'inplace' ? Math.max(0, (index - 1) * h.splitSize) : 0;
}

/** Bytes of the source window chunk `index` may reference (`ab`: the old image). */
export function windowLength(h: Pick<PackageHeader, 'mode' | 'oldSize' | 'splitSize'>, index: number): number {
  if (h.mode === 'raw') return 0;
  return Math.max(windowBoundary(h, index), h.oldSize);
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

/** What encodeHeader needs; without a transform the package is diff_version 2. */
export type HeaderFields = Omit<PackageHeader, 'headerLength' | 'diffVersion' | 'payloadLength' | 'transform'> & { transform?: PackageTransform | null };

export function encodeHeader(h: HeaderFields): Uint8Array {
  const count = h.chunks.length;
  const transform = h.transform ?? null;
  if (transform !== null && h.mode === 'raw') throw new RangeError('a raw package has no transform');
  const sectionLength = transform === null ? 0 : transformSectionLength(transform, count);
  const headerLength = headerLengthFor(count) + sectionLength;
  const out = new Uint8Array(headerLength);
  const v = new DataView(out.buffer);
  let payload = 0;
  for (const c of h.chunks) payload += c.recordLength;
  const version = new TextEncoder().encode(h.firmwareVersion);
  if (!isPrintableAscii(h.firmwareVersion) || version.length > FIRMWARE_VERSION_BYTES)
    throw new RangeError(`firmware version must be printable ASCII of at most ${FIRMWARE_VERSION_BYTES} bytes`);
  if (!Number.isInteger(h.securityCounter) || h.securityCounter < 0 || h.securityCounter > 0xffff_ffff)
    throw new RangeError('security counter must be an integer in [0, 2^32)');
  const raw = h.mode === 'raw';
  v.setUint32(0, MAGIC, true);
  v.setUint16(4, transform === null ? PLAIN_DIFF_VERSION : DIFF_VERSION, true);
  v.setUint8(6, MODE_CODES.indexOf(h.mode));
  v.setUint8(7, h.allowDowngrade ? FLAG_ALLOW_DOWNGRADE : 0);
  v.setUint32(8, headerLength, true);
  v.setUint32(12, h.splitSize, true);
  v.setUint32(16, h.oldSize, true);
  v.setUint32(20, h.newSize, true);
  v.setUint32(24, count, true);
  v.setUint8(28, raw ? COMPRESSION_STORED : COMPRESSION_LZMA);
  v.setUint8(29, raw ? 0 : propsByte(h.lzma));
  v.setUint16(30, h.signatureType, true);
  v.setUint32(32, raw ? 0 : h.lzma.dictSize, true);
  v.setUint32(36, h.signatureLength, true);
  v.setUint32(40, h.securityCounter, true);
  out.set(h.oldSha256, 44);
  out.set(h.newSha256, 76);
  v.setUint32(108, payload, true);
  out.set(h.payloadSha256, 112);
  out.set(version, 144);
  let off = FIXED_HEADER_BYTES;
  for (const c of h.chunks) {
    v.setUint32(off, c.recordOffset, true);
    v.setUint32(off + 4, c.recordLength, true);
    v.setUint32(off + 8, c.rawLength, true);
    v.setUint32(off + 12, c.crc32 >>> 0, true);
    off += CHUNK_ENTRY_BYTES;
  }
  if (transform !== null) off = encodeTransformSection(transform, count, out, off);
  v.setUint32(off, crc32(out.subarray(0, off)) >>> 0, true);
  return out;
}

function isPrintableAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

/**
 * The fixed part of a header, validated against `limits`; the chunk table is not read yet. The streaming
 * patcher's header is this too: it reads the table entry by entry from the signed bytes, never as objects.
 */
export interface FixedHeader extends Omit<PackageHeader, 'chunks' | 'transform'> {
  chunkCount: number;
}

/** A fixed header whose signed rest (chunk table, transform section) is validated too. */
export type SignedHeader = FixedHeader & Pick<PackageHeader, 'transform'>;

function fail(code: ConstructorParameters<typeof PackageError>[0], msg: string): never {
  throw new PackageError(code, msg);
}

/** Parses and validates the first FIXED_HEADER_BYTES of a package. */
export function parseFixedHeader(bytes: Uint8Array, limits: PatcherLimits = DEFAULT_LIMITS): FixedHeader {
  if (bytes.length < FIXED_HEADER_BYTES) fail('truncated', `package is shorter than its ${FIXED_HEADER_BYTES}-byte header`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, FIXED_HEADER_BYTES);
  if (v.getUint32(0, true) !== MAGIC) fail('bad-magic', 'not an otadiff package (bad magic)');
  const diffVersion = v.getUint16(4, true);
  if (diffVersion !== DIFF_VERSION && diffVersion !== PLAIN_DIFF_VERSION)
    fail('unsupported-version', `unsupported diff_version ${diffVersion} (this patcher reads ${PLAIN_DIFF_VERSION} and ${DIFF_VERSION})`);
  const modeCode = v.getUint8(6);
  if (modeCode >= MODE_CODES.length) fail('bad-header', `unknown mode ${modeCode}`);
  const mode = MODE_CODES[modeCode];
  const flags = v.getUint8(7);
  if ((flags & ~FLAG_ALLOW_DOWNGRADE) !== 0) fail('bad-header', `unknown flags 0x${flags.toString(16)}`);
  const headerLength = v.getUint32(8, true);
  const splitSize = v.getUint32(12, true);
  const oldSize = v.getUint32(16, true);
  const newSize = v.getUint32(20, true);
  const chunkCount = v.getUint32(24, true);
  const compression = v.getUint8(28);
  const props = v.getUint8(29);
  const signatureType = v.getUint16(30, true);
  const dictSize = v.getUint32(32, true);
  const signatureLength = v.getUint32(36, true);
  const securityCounter = v.getUint32(40, true);
  const payloadLength = v.getUint32(108, true);

  if (splitSize < SPLIT_ALIGN || splitSize % SPLIT_ALIGN !== 0 || splitSize > MAX_SPLIT_SIZE)
    fail('bad-header', `split size ${splitSize} is not a multiple of ${SPLIT_ALIGN} in [${SPLIT_ALIGN}, ${MAX_SPLIT_SIZE}]`);
  if (splitSize > limits.maxSplitSize) fail('limit-exceeded', `split size ${splitSize} exceeds this device's limit ${limits.maxSplitSize}`);
  if (oldSize > limits.maxImageSize || newSize > limits.maxImageSize)
    fail('limit-exceeded', `image size (old ${oldSize}, new ${newSize}) exceeds the limit ${limits.maxImageSize}`);
  if (chunkCount !== chunkCountFor(newSize, splitSize))
    fail('bad-header', `chunk count ${chunkCount} does not match new size ${newSize} / split ${splitSize}`);
  if (diffVersion === PLAIN_DIFF_VERSION) {
    if (headerLength !== headerLengthFor(chunkCount)) fail('bad-header', `header length ${headerLength} does not match ${chunkCount} chunks`);
  } else {
    // Version 3: the transform section fills the rest of the signed header.
    if (mode === 'raw') fail('bad-header', 'a raw package has no transform (diff_version 3)');
    const maxMapEntries = limits.maxMapEntries ?? DEFAULT_MAX_MAP_ENTRIES;
    const { min, max } = transformSectionBounds(chunkCount, maxMapEntries);
    const section = headerLength - headerLengthFor(chunkCount);
    if (section < min) fail('bad-header', `header length ${headerLength} leaves ${section} bytes for a transform section of at least ${min}`);
    if (section > max) fail('limit-exceeded', `a ${section}-byte transform section exceeds this device's limit of ${maxMapEntries} map segments`);
  }
  let lzma: LzmaParams;
  if (mode === 'raw') {
    if (compression !== COMPRESSION_STORED || props !== 0 || dictSize !== 0) fail('bad-header', 'a raw package must be stored (no compression, no dictionary)');
    if (oldSize !== 0) fail('bad-header', 'a raw package has no old image');
    for (let i = 44; i < 76; i++) if (bytes[i] !== 0) fail('bad-header', 'a raw package has no old-image SHA-256');
    if (payloadLength !== newSize) fail('bad-header', `a raw package stores ${newSize} bytes, not ${payloadLength}`);
    lzma = STORED_PARAMS;
  } else {
    if (compression !== COMPRESSION_LZMA) fail('bad-header', `unknown compression ${compression}`);
    if (props > 224) fail('bad-header', `invalid LZMA properties byte ${props}`);
    const lc = props % 9;
    const lp = Math.floor(props / 9) % 5;
    const pb = Math.floor(props / 45);
    if (lc + lp > 4) fail('bad-header', `LZMA lc+lp = ${lc + lp} exceeds 4`);
    if (dictSize < MIN_DICT_SIZE || dictSize > MAX_DICT_SIZE) fail('bad-header', `LZMA dictionary size ${dictSize} is out of range`);
    if (dictSize > limits.maxDictSize)
      fail('limit-exceeded', `package needs a ${dictSize}-byte LZMA dictionary; this device allows ${limits.maxDictSize}`);
    lzma = { lc, lp, pb, dictSize };
  }
  if (signatureType !== SignatureType.none) {
    const alg = signatureAlgorithmOf(signatureType);
    if (alg === null) fail('bad-header', `unknown signature type ${signatureType}`);
    if (signatureLength !== SIGNATURE_BYTES[alg]) fail('bad-header', `a ${alg} signature is ${SIGNATURE_BYTES[alg]} bytes, not ${signatureLength}`);
  } else if (signatureLength !== 0) fail('bad-header', 'signature type and length disagree');
  const firmwareVersion = decodeVersion(bytes.subarray(144, 144 + FIRMWARE_VERSION_BYTES));
  return {
    diffVersion,
    mode,
    splitSize,
    oldSize,
    newSize,
    oldSha256: bytes.slice(44, 76),
    newSha256: bytes.slice(76, 108),
    lzma,
    signatureType,
    signatureLength,
    payloadLength,
    payloadSha256: bytes.slice(112, 144),
    firmwareVersion,
    securityCounter,
    allowDowngrade: (flags & FLAG_ALLOW_DOWNGRADE) !== 0,
    headerLength,
    chunkCount,
  };
}

/** Printable ASCII, then only NUL padding: one spelling per version string. */
function decodeVersion(field: Uint8Array): string {
  let end = field.indexOf(0);
  if (end < 0) end = field.length;
  for (let i = end; i < field.length; i++) if (field[i] !== 0) fail('bad-header', 'firmware version has bytes after its NUL padding');
  let s = '';
  for (let i = 0; i < end; i++) {
    if (field[i] < 0x20 || field[i] > 0x7e) fail('bad-header', 'firmware version is not printable ASCII');
    s += String.fromCharCode(field[i]);
  }
  return s;
}

/** Chunk `index`'s entry from a view of the chunk table, written into `into` (so a reader may reuse one object). */
export function readChunkEntry(table: DataView, index: number, into: ChunkEntry): ChunkEntry {
  const o = index * CHUNK_ENTRY_BYTES;
  into.recordOffset = table.getUint32(o, true);
  into.recordLength = table.getUint32(o + 4, true);
  into.rawLength = table.getUint32(o + 8, true);
  into.crc32 = table.getUint32(o + 12, true);
  return into;
}

/** The validated rest of the signed header: a view of the chunk entries, and the transform. */
export interface CheckedTable {
  entries: DataView;
  transform: PackageTransform | null;
}

/**
 * Validates the chunk table and transform section (`table` = bytes FIXED_HEADER_BYTES..headerLength of the
 * package, CRC included) without building objects per chunk, and returns a view of the entries for
 * readChunkEntry. `fixedBytes` are the first FIXED_HEADER_BYTES of the package, which the header CRC
 * covers too.
 */
export function checkChunkTable(fixed: FixedHeader, table: Uint8Array, fixedBytes: Uint8Array, limits: PatcherLimits = DEFAULT_LIMITS): CheckedTable {
  const count = fixed.chunkCount;
  const tableBytes = count * CHUNK_ENTRY_BYTES;
  const signedBytes = fixed.headerLength - FIXED_HEADER_BYTES - HEADER_CRC_BYTES;
  if (table.length !== signedBytes + HEADER_CRC_BYTES) fail('truncated', 'chunk table is truncated');
  const v = new DataView(table.buffer, table.byteOffset, table.length);
  const stored = v.getUint32(signedBytes, true);
  const actual = crc32(table.subarray(0, signedBytes), crc32(fixedBytes.subarray(0, FIXED_HEADER_BYTES))) >>> 0;
  if (stored !== actual) fail('header-checksum', 'header checksum mismatch (corrupt package)');
  const e: ChunkEntry = { recordOffset: 0, recordLength: 0, rawLength: 0, crc32: 0 };
  let expectedOffset = 0;
  for (let i = 0; i < count; i++) {
    const { recordOffset, recordLength, rawLength } = readChunkEntry(v, i, e);
    // Records are contiguous and in chunk order: no gaps, no overlaps, nothing past the payload.
    if (recordOffset !== expectedOffset) fail('bad-chunk-table', `chunk ${i}: record offset ${recordOffset}, expected ${expectedOffset}`);
    if (recordLength === 0) fail('bad-chunk-table', `chunk ${i}: empty record`);
    const len = chunkLength(fixed, i);
    if (fixed.mode === 'raw' && (recordLength !== len || rawLength !== len))
      fail('bad-chunk-table', `chunk ${i}: a stored chunk of ${len} bytes has a ${recordLength}-byte record`);
    if (rawLength === 0 || rawLength > maxRawLength(len))
      fail('bad-chunk-table', `chunk ${i}: command stream length ${rawLength} is impossible for a ${len}-byte chunk`);
    expectedOffset += recordLength;
    if (expectedOffset > fixed.payloadLength) fail('bad-chunk-table', `chunk ${i}: record runs past the payload`);
  }
  if (expectedOffset !== fixed.payloadLength)
    fail('bad-chunk-table', `records add up to ${expectedOffset} bytes, header says ${fixed.payloadLength}`);
  const transform =
    signedBytes === tableBytes
      ? null
      : parseTransformSection(table.subarray(tableBytes, signedBytes), {
          mode: fixed.mode,
          chunkCount: count,
          maxMapEntries: limits.maxMapEntries ?? DEFAULT_MAX_MAP_ENTRIES,
        });
  return { entries: new DataView(table.buffer, table.byteOffset, tableBytes), transform };
}

/** Validates the chunk table (as checkChunkTable) and returns the whole header with its entries as objects. */
export function parseChunkTable(fixed: FixedHeader, table: Uint8Array, fixedBytes: Uint8Array, limits: PatcherLimits = DEFAULT_LIMITS): PackageHeader {
  const { entries, transform } = checkChunkTable(fixed, table, fixedBytes, limits);
  const chunks: ChunkEntry[] = new Array(fixed.chunkCount);
  for (let i = 0; i < chunks.length; i++) chunks[i] = readChunkEntry(entries, i, { recordOffset: 0, recordLength: 0, rawLength: 0, crc32: 0 });
  const { chunkCount: _unused, ...rest } = fixed;
  return { ...rest, chunks, transform };
}

/** Parses a whole header held in memory (`bytes` may be the whole package). */
export function parseHeader(bytes: Uint8Array, limits: PatcherLimits = DEFAULT_LIMITS): PackageHeader {
  const fixed = parseFixedHeader(bytes, limits);
  if (bytes.length < fixed.headerLength) fail('truncated', `package is shorter than its ${fixed.headerLength}-byte header`);
  return parseChunkTable(fixed, bytes.subarray(FIXED_HEADER_BYTES, fixed.headerLength), bytes, limits);
}
