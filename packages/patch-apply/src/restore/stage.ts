// What the OTA service's set_boot leaves for the bootloader: the package in the OTA partition and a
// hand-over record naming it. Also the application's confirmation of a good boot.
import { sha256 } from '@noble/hashes/sha2.js';
import { eraseRange, type Flash } from '../flash/flash.js';
import { readHandover, writeHandover, type Handover, type Slot, type UpdateType } from '../flash/handover.js';
import { openPartition, type PartitionLayout } from '../flash/partition-layout.js';
import { parseHeader } from '../package-format.js';

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
  eraseRange(ota, 0, Math.ceil(pkg.length / ota.geometry.sectorSize) * ota.geometry.sectorSize);
  const unit = ota.geometry.programUnit;
  const padded = new Uint8Array(Math.ceil(pkg.length / unit) * unit).fill(0xff);
  padded.set(pkg);
  if (padded.length > 0) ota.program(0, padded);
  return setBoot(flash, layout, pkg.length, sha256(pkg), pkg, opts);
}

/**
 * Records a complete package of `length` bytes at OTA offset 0 for the bootloader. `head` is the
 * package (or at least its header) for a diff, to take the mode, split size and diff_version from.
 */
export function setBoot(flash: Flash, layout: PartitionLayout, length: number, digest: Uint8Array, head: Uint8Array, opts: StageOptions = {}): Handover {
  const active = runningSlot(flash, layout);
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
  };
  const params = openPartition(flash, layout, 'params');
  if ((opts.firmwareType ?? 'diff') === 'raw') {
    const targetSlot = layout.appB !== undefined ? other : active;
    return writeHandover(params, { ...base, firmwareType: 'raw', imageSize: length, targetSlot });
  }
  const h = parseHeader(head);
  const targetSlot = h.mode === 'ab' ? other : active;
  return writeHandover(params, { ...base, firmwareType: 'diff', splitSize: h.splitSize, diffVersion: h.diffVersion, targetSlot });
}

/** The application confirms that `slot` booted well: it becomes the confirmed active slot. */
export function confirmBoot(flash: Flash, layout: PartitionLayout, slot: Slot): Handover | null {
  const params = openPartition(flash, layout, 'params');
  const h = readHandover(params);
  if (h === null || (h.confirmed && h.activeSlot === slot)) return h;
  const { seq: _seq, ...rest } = h;
  return writeHandover(params, { ...rest, activeSlot: slot, confirmed: true });
}
