/**
 * Hand-over record: what the OTA service's `set_boot` leaves for the bootloader.
 *
 * Carries the fields of AliOS Things' `ota_finish_param_t` (update type, result,
 * firmware type, split size, diff version, rollback) plus what the boot side needs to
 * find and check the package and to track the boot attempt.
 *
 * Binary form: HANDOVER_SIZE bytes, little-endian, fixed layout:
 *   off  size  field
 *     0     4  magic 'OTAH'
 *     4     2  format version (1)
 *     6     2  record size (80)
 *     8     4  sequence number (higher = newer)
 *    12     1  updateType     1 kernel, 2 app, 3 all
 *    13     1  result         1 finish, 2 breakpoint
 *    14     1  firmwareType   1 raw, 2 diff
 *    15     1  rollback       0 / 1
 *    16     1  targetSlot     'A' (0x41) / 'B' (0x42)
 *    17     1  activeSlot     'A' / 'B'
 *    18     1  confirmed      0 / 1
 *    19     1  bootCount      0..255
 *    20     4  package offset in the OTA partition
 *    24     4  package length
 *    28     4  splitSize      (diff; 0 for raw)
 *    32     4  diffVersion    (diff; 0 for raw)
 *    36     4  imageSize      (raw; 0 for diff)
 *    40    32  SHA-256 of the package
 *    72     4  securityCounter: the highest security counter confirmed on this device
 *    76     4  CRC-32 of bytes 0..75
 * Enum codes avoid 0x00 and 0xFF so a zeroed or erased field is never a valid value.
 * The encoding is canonical: unused fields must be zero, so decode(encode(r)) == r and
 * every accepted byte string has exactly one meaning.
 *
 * Storage: two copies, in two sectors of the params partition. A write goes to the
 * sector holding the invalid or older copy, so a torn write can only damage the copy
 * that was already superseded.
 */
import { crc32 } from '../crc32.js';
import { FlashError, padToUnit, readBytes, roundUp, sectorCount, sectorLength, sectorStart, type Flash } from './flash.js';
import type { PartitionLayout } from './partition-layout.js';
import { PARAMS_HANDOVER_SECTOR } from './partition-layout.js';

export type UpdateType = 'kernel' | 'app' | 'all';
/** 'finish': the package is complete; 'breakpoint': the download stopped part-way. */
export type UpdateResult = 'finish' | 'breakpoint';
export type Slot = 'A' | 'B';

interface HandoverBase {
  readonly seq: number;
  readonly updateType: UpdateType;
  readonly result: UpdateResult;
  /** Roll back to the previous image if the new one is never confirmed. */
  readonly rollback: boolean;
  readonly packageOffset: number;
  readonly packageLength: number;
  /** 32 bytes. */
  readonly packageSha256: Uint8Array;
  readonly targetSlot: Slot;
  readonly activeSlot: Slot;
  /** Boots attempted since the switch (the bootloader's trial counter). */
  readonly bootCount: number;
  /** The running image has confirmed itself healthy. */
  readonly confirmed: boolean;
  /**
   * Anti-rollback: the highest package security counter confirmed on this device. Every write carries
   * it forward; a confirmation raises it to the confirmed package's counter.
   */
  readonly securityCounter: number;
}

/** The package is the full image. */
export interface RawHandover extends HandoverBase {
  readonly firmwareType: 'raw';
  readonly imageSize: number;
}

/** The package is a delta, applied in `splitSize` chunks. */
export interface DiffHandover extends HandoverBase {
  readonly firmwareType: 'diff';
  readonly splitSize: number;
  readonly diffVersion: number;
}

export type Handover = RawHandover | DiffHandover;

type WithoutSeq<T> = T extends unknown ? Omit<T, 'seq'> : never;
/** A record before writeHandover assigns its sequence number. */
export type HandoverInput = WithoutSeq<Handover>;

export class HandoverError extends Error {
  override name = 'HandoverError';
}

export const HANDOVER_MAGIC = 0x4841544f; // bytes 'O' 'T' 'A' 'H'
export const HANDOVER_VERSION = 1;
export const HANDOVER_SIZE = 80;
const CRC_OFFSET = 76;
const SHA_OFFSET = 40;

const UPDATE_TYPES: readonly UpdateType[] = ['kernel', 'app', 'all'];
const RESULTS: readonly UpdateResult[] = ['finish', 'breakpoint'];
const FIRMWARE_TYPES: readonly Handover['firmwareType'][] = ['raw', 'diff'];
const SLOTS: readonly Slot[] = ['A', 'B'];

function encodeEnum<T>(values: readonly T[], v: T, field: string): number {
  const i = values.indexOf(v);
  if (i < 0) throw new HandoverError(`${field}: unknown value ${String(v)}`);
  return i + 1;
}

function decodeEnum<T>(values: readonly T[], code: number, field: string): T {
  if (code < 1 || code > values.length) throw new HandoverError(`${field}: unknown code ${code}`);
  return values[code - 1];
}

function slotCode(s: Slot, field: string): number {
  if (!SLOTS.includes(s)) throw new HandoverError(`${field}: unknown slot ${String(s)}`);
  return s.charCodeAt(0);
}

function slotOf(code: number, field: string): Slot {
  if (code === 0x41) return 'A';
  if (code === 0x42) return 'B';
  throw new HandoverError(`${field}: unknown slot code 0x${code.toString(16)}`);
}

function boolOf(code: number, field: string): boolean {
  if (code === 0) return false;
  if (code === 1) return true;
  throw new HandoverError(`${field}: expected 0 or 1, got ${code}`);
}

function u32(v: number, field: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new HandoverError(`${field}: not a u32: ${v}`);
  return v;
}

function checkRecord(r: Handover): void {
  u32(r.seq, 'seq');
  u32(r.packageOffset, 'packageOffset');
  u32(r.packageLength, 'packageLength');
  u32(r.securityCounter, 'securityCounter');
  if (r.packageOffset + r.packageLength > 0xffffffff) throw new HandoverError('package extends past 4 GiB');
  if (!Number.isInteger(r.bootCount) || r.bootCount < 0 || r.bootCount > 255) {
    throw new HandoverError(`bootCount: not a u8: ${r.bootCount}`);
  }
  if (typeof r.rollback !== 'boolean') throw new HandoverError('rollback: not a boolean');
  if (typeof r.confirmed !== 'boolean') throw new HandoverError('confirmed: not a boolean');
  if (!(r.packageSha256 instanceof Uint8Array) || r.packageSha256.length !== 32) {
    throw new HandoverError('packageSha256: must be 32 bytes');
  }
  if (r.firmwareType === 'raw') {
    if (u32(r.imageSize, 'imageSize') === 0) throw new HandoverError('imageSize: must be > 0 for a raw image');
  } else if (r.firmwareType === 'diff') {
    if (u32(r.splitSize, 'splitSize') === 0) throw new HandoverError('splitSize: must be > 0 for a diff');
    u32(r.diffVersion, 'diffVersion');
  } else {
    throw new HandoverError(`firmwareType: unknown value ${String((r as { firmwareType: unknown }).firmwareType)}`);
  }
}

export function encodeHandover(r: Handover): Uint8Array {
  checkRecord(r);
  const out = new Uint8Array(HANDOVER_SIZE);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, HANDOVER_MAGIC, true);
  dv.setUint16(4, HANDOVER_VERSION, true);
  dv.setUint16(6, HANDOVER_SIZE, true);
  dv.setUint32(8, r.seq, true);
  out[12] = encodeEnum(UPDATE_TYPES, r.updateType, 'updateType');
  out[13] = encodeEnum(RESULTS, r.result, 'result');
  out[14] = encodeEnum(FIRMWARE_TYPES, r.firmwareType, 'firmwareType');
  out[15] = r.rollback ? 1 : 0;
  out[16] = slotCode(r.targetSlot, 'targetSlot');
  out[17] = slotCode(r.activeSlot, 'activeSlot');
  out[18] = r.confirmed ? 1 : 0;
  out[19] = r.bootCount;
  dv.setUint32(20, r.packageOffset, true);
  dv.setUint32(24, r.packageLength, true);
  if (r.firmwareType === 'diff') {
    dv.setUint32(28, r.splitSize, true);
    dv.setUint32(32, r.diffVersion, true);
  } else {
    dv.setUint32(36, r.imageSize, true);
  }
  out.set(r.packageSha256, SHA_OFFSET);
  dv.setUint32(72, r.securityCounter, true);
  dv.setUint32(CRC_OFFSET, crc32(out.subarray(0, CRC_OFFSET)), true);
  return out;
}

/** Parses and validates one record; throws HandoverError on any inconsistency. */
export function decodeHandover(bytes: Uint8Array): Handover {
  if (bytes.length !== HANDOVER_SIZE) {
    throw new HandoverError(`hand-over record must be ${HANDOVER_SIZE} bytes, got ${bytes.length}`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = dv.getUint32(0, true);
  if (magic !== HANDOVER_MAGIC) throw new HandoverError(`bad magic 0x${magic.toString(16)}`);
  const stored = dv.getUint32(CRC_OFFSET, true);
  const actual = crc32(bytes.subarray(0, CRC_OFFSET));
  if (stored !== actual) {
    throw new HandoverError(`CRC mismatch: stored 0x${stored.toString(16)}, computed 0x${actual.toString(16)}`);
  }
  const version = dv.getUint16(4, true);
  if (version !== HANDOVER_VERSION) throw new HandoverError(`unsupported version ${version}`);
  const size = dv.getUint16(6, true);
  if (size !== HANDOVER_SIZE) throw new HandoverError(`record size field ${size}, expected ${HANDOVER_SIZE}`);

  const base = {
    seq: dv.getUint32(8, true),
    updateType: decodeEnum(UPDATE_TYPES, bytes[12], 'updateType'),
    result: decodeEnum(RESULTS, bytes[13], 'result'),
    rollback: boolOf(bytes[15], 'rollback'),
    targetSlot: slotOf(bytes[16], 'targetSlot'),
    activeSlot: slotOf(bytes[17], 'activeSlot'),
    confirmed: boolOf(bytes[18], 'confirmed'),
    bootCount: bytes[19],
    packageOffset: dv.getUint32(20, true),
    packageLength: dv.getUint32(24, true),
    packageSha256: bytes.slice(SHA_OFFSET, SHA_OFFSET + 32),
    securityCounter: dv.getUint32(72, true),
  };
  const splitSize = dv.getUint32(28, true);
  const diffVersion = dv.getUint32(32, true);
  const imageSize = dv.getUint32(36, true);
  const firmwareType = decodeEnum(FIRMWARE_TYPES, bytes[14], 'firmwareType');
  let rec: Handover;
  if (firmwareType === 'raw') {
    if (splitSize !== 0 || diffVersion !== 0) throw new HandoverError('raw record has diff fields set');
    rec = { ...base, firmwareType, imageSize };
  } else {
    if (imageSize !== 0) throw new HandoverError('diff record has imageSize set');
    rec = { ...base, firmwareType, splitSize, diffVersion };
  }
  checkRecord(rec);
  return rec;
}

export interface HandoverStoreOptions {
  /** First of the two sectors holding the copies (default PARAMS_HANDOVER_SECTOR). */
  firstSector?: number;
}

/** State of one stored copy. */
export type HandoverCopy =
  | { readonly status: 'valid'; readonly record: Handover }
  | { readonly status: 'erased' }
  | { readonly status: 'invalid'; readonly error: string };

function storeSectors(params: Flash, opts: HandoverStoreOptions): [number, number] {
  const first = opts.firstSector ?? PARAMS_HANDOVER_SECTOR;
  const g = params.geometry;
  const sectors = sectorCount(g);
  if (!Number.isSafeInteger(first) || first < 0 || first + 2 > sectors) {
    throw new FlashError(`hand-over store needs sectors ${first} and ${first + 1}; the partition has ${sectors}`);
  }
  for (const s of [first, first + 1]) {
    if (roundUp(HANDOVER_SIZE, g.programUnit) > sectorLength(g, s)) {
      throw new FlashError(`sector size ${sectorLength(g, s)} cannot hold a ${HANDOVER_SIZE}-byte hand-over record`);
    }
  }
  return [first, first + 1];
}

/** Reads and classifies both copies (for diagnostics; readHandover picks one). */
export function inspectHandover(params: Flash, opts: HandoverStoreOptions = {}): [HandoverCopy, HandoverCopy] {
  const g = params.geometry;
  return storeSectors(params, opts).map((s): HandoverCopy => {
    const bytes = readBytes(params, sectorStart(g, s), HANDOVER_SIZE);
    if (bytes.every((b) => b === g.erasedValue)) return { status: 'erased' };
    try {
      return { status: 'valid', record: decodeHandover(bytes) };
    } catch (e) {
      if (e instanceof HandoverError) return { status: 'invalid', error: e.message };
      throw e;
    }
  }) as [HandoverCopy, HandoverCopy];
}

/** The valid copy with the highest sequence number, or null if neither is valid. */
export function readHandover(params: Flash, opts: HandoverStoreOptions = {}): Handover | null {
  const [a, b] = inspectHandover(params, opts);
  const ra = a.status === 'valid' ? a.record : null;
  const rb = b.status === 'valid' ? b.record : null;
  if (ra === null) return rb;
  if (rb === null) return ra;
  return rb.seq > ra.seq ? rb : ra;
}

/**
 * Stores `rec` with the next sequence number into the sector holding the invalid or
 * older copy, then reads it back. Returns the record as written.
 */
export function writeHandover(params: Flash, rec: HandoverInput, opts: HandoverStoreOptions = {}): Handover {
  const sectors = storeSectors(params, opts);
  const copies = inspectHandover(params, opts);
  const seqs = copies.map((c) => (c.status === 'valid' ? c.record.seq : -1));
  const newest = Math.max(seqs[0], seqs[1]);
  if (newest >= 0xffffffff) throw new HandoverError('sequence number exhausted');
  const full = { ...rec, seq: newest < 0 ? 1 : newest + 1 } as Handover;
  const encoded = encodeHandover(full);
  // Overwrite the copy readHandover does not return: the invalid or older one. Two valid copies with
  // the same sequence number (only a forged or miswritten record gives that) read as copy 0, so copy 1
  // goes; with neither valid, copy 0.
  const target = newest < 0 || seqs[0] < seqs[1] ? 0 : 1;
  const g = params.geometry;
  const padded = padToUnit(encoded, g);
  const offset = sectorStart(g, sectors[target]);
  // Erased first, programmed once: no unit of the copy is ever programmed twice.
  params.erase(sectors[target]);
  params.program(offset, padded);
  const back = readBytes(params, offset, HANDOVER_SIZE);
  for (let i = 0; i < HANDOVER_SIZE; i++) {
    if (back[i] !== encoded[i]) throw new FlashError(`hand-over record read-back mismatch at byte ${i}`);
  }
  return full;
}

/**
 * Checks a record against the device layout: the package lies inside the OTA
 * partition, the slots exist, a raw image fits the target slot.
 */
export function checkHandoverFits(r: Handover, layout: PartitionLayout): void {
  if (r.packageOffset + r.packageLength > layout.ota.size) {
    throw new HandoverError(
      `package [${r.packageOffset}, +${r.packageLength}) does not fit the OTA partition (${layout.ota.size} bytes)`,
    );
  }
  for (const [field, slot] of [
    ['targetSlot', r.targetSlot],
    ['activeSlot', r.activeSlot],
  ] as const) {
    if (slot === 'B' && layout.appB === undefined) throw new HandoverError(`${field} is B but the layout has no slot B`);
  }
  const slotSize = r.targetSlot === 'A' ? layout.appA.size : (layout.appB?.size ?? 0);
  if (r.firmwareType === 'raw' && r.imageSize > slotSize) {
    throw new HandoverError(`image of ${r.imageSize} bytes does not fit slot ${r.targetSlot} (${slotSize} bytes)`);
  }
}
