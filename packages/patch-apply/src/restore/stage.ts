// What the OTA service's set_boot leaves for the bootloader: the package in the OTA partition and a
// hand-over record naming it. Also the application's confirmation of a good boot.
import { sha256 } from '@noble/hashes/sha2.js';
import { eraseRange, padToUnit, readBytes, sectorCeil, type Flash } from '../flash/flash.js';
import { readHandover, writeHandover, type Handover, type Slot, type UpdateType } from '../flash/handover.js';
import { openPartition, type PartitionLayout } from '../flash/partition-layout.js';
import { FIXED_HEADER_BYTES, parseFixedHeader, parseHeader } from '../package-format.js';
import { PackageError } from '../package-error.js';
import { digestEquals, hashSource } from '../stream-patcher.js';

export interface StageOptions {
  firmwareType?: 'diff' | 'raw';
  updateType?: UpdateType;
  rollback?: boolean;
}

/** The slot the device runs now: the confirmed active slot, or A on a fresh device. */
export function runningSlot(flash: Flash, layout: PartitionLayout): Slot {
  const h = readHandover(openPartition(flash, layout, 'params'));
  return h?.confirmed ? h.activeSlot : (h?.activeSlot ?? 'A');
}

/** Writes `pkg` at the start of the OTA partition, then the hand-over record (result FINISH). */
export function stageUpdate(flash: Flash, layout: PartitionLayout, pkg: Uint8Array, opts: StageOptions = {}): Handover {
  const ota = openPartition(flash, layout, 'ota');
  if (pkg.length > ota.geometry.size) throw new RangeError(`package of ${pkg.length} bytes does not fit the ${ota.geometry.size}-byte OTA partition`);
  eraseRange(ota, 0, sectorCeil(ota.geometry, pkg.length));
  const padded = padToUnit(pkg, ota.geometry);
  if (padded.length > 0) ota.program(0, padded);
  return setBoot(flash, layout, pkg.length, sha256(pkg), pkg, opts);
}

/**
 * Records a complete package of `length` bytes at OTA offset 0 for the bootloader. `head` is the
 * package (or at least its header) for a diff, to take the mode, split size and diff_version from.
 */
export function setBoot(flash: Flash, layout: PartitionLayout, length: number, digest: Uint8Array, head: Uint8Array, opts: StageOptions = {}): Handover {
  const params = openPartition(flash, layout, 'params');
  const previous = readHandover(params);
  const active = previous?.confirmed ? previous.activeSlot : (previous?.activeSlot ?? 'A');
  const other: Slot = active === 'A' ? 'B' : 'A';
  const base = {
    updateType: opts.updateType ?? 'app',
    result: 'finish' as const,
    rollback: opts.rollback ?? true,
    packageOffset: 0,
    packageLength: length,
    packageSha256: digest,
    activeSlot: active,
    bootCount: 0,
    confirmed: false,
    securityCounter: previous?.securityCounter ?? 0,
  };
  const h = parseHeader(head);
  if ((opts.firmwareType ?? (h.mode === 'raw' ? 'raw' : 'diff')) === 'raw') {
    if (h.mode !== 'raw') throw new RangeError(`an OTA_RAW update needs a raw package, not ${h.mode}`);
    const targetSlot = layout.appB !== undefined ? other : active;
    return writeHandover(params, { ...base, firmwareType: 'raw', imageSize: h.newSize, targetSlot });
  }
  if (h.mode === 'raw') throw new RangeError('a raw package is an OTA_RAW update, not a diff');
  const targetSlot = h.mode === 'ab' ? other : active;
  return writeHandover(params, { ...base, firmwareType: 'diff', splitSize: h.splitSize, diffVersion: h.diffVersion, targetSlot });
}

/**
 * The application confirms that `slot` booted well: it becomes the confirmed active slot. Confirming
 * the update's new image raises the recorded security counter to the package's.
 */
export function confirmBoot(flash: Flash, layout: PartitionLayout, slot: Slot): Handover | null {
  const params = openPartition(flash, layout, 'params');
  const h = readHandover(params);
  if (h === null || (h.confirmed && h.activeSlot === slot)) return h;
  const { seq: _seq, ...rest } = h;
  const counter = slot === h.targetSlot && h.result === 'finish' ? packageCounter(flash, layout, h) : 0;
  return writeHandover(params, { ...rest, activeSlot: slot, confirmed: true, securityCounter: Math.max(h.securityCounter, counter) });
}

/**
 * The security counter of the hand-over's package, still in the OTA partition: the package the
 * bootloader verified, as long as its bytes still hash to the hand-over's SHA-256 (0 otherwise).
 */
function packageCounter(flash: Flash, layout: PartitionLayout, h: Handover): number {
  const ota = openPartition(flash, layout, 'ota');
  if (h.packageLength < FIXED_HEADER_BYTES || h.packageOffset + h.packageLength > ota.geometry.size) return 0;
  const pkg = { read: (off: number, dst: Uint8Array, dstOff: number, len: number) => ota.read(h.packageOffset + off, dst, dstOff, len) };
  if (!digestEquals(hashSource(pkg, h.packageLength), h.packageSha256)) return 0;
  try {
    return parseFixedHeader(readBytes(ota, h.packageOffset, FIXED_HEADER_BYTES)).securityCounter;
  } catch (e) {
    if (e instanceof PackageError) return 0;
    throw e;
  }
}
