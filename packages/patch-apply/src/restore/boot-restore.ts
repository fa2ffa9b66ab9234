// The bootloader's side of an update: restore the new image from the package in the OTA partition,
// in place or into the other slot, resumable after a power cut at any flash operation.
//
// Every state is persisted in the journal (flash/journal.ts) before the next step depends on it:
//   idle ──verify──▶ verified ──▶ [group: saved a? ──▶ chunk-done k+]* ──▶ image-verified ──▶ boot-switched(n)
//     └──────────────┴──── any check fails before destruction ──▶ failed (the old image boots)
// In place the groups are restore/inplace-restore.ts's ('saved' once a group's old bytes are in the backup
// ring); A/B and OTA_RAW restores only log 'chunk-done' (restore/copy-restore.ts).
// The hand-over record is read-only here; the application's confirmation is a new hand-over record.
// Only the package and the images are judged: a flash error (or a power cut) propagates out of boot()
// and the next boot resumes from the journal, as after any reset.
import { sha256 } from '@noble/hashes/sha2.js';
import { chunkDecoderRamBytes } from '../chunk-decoder.js';
import { PackageError } from '../package-error.js';
import {
  DEFAULT_LIMITS,
  FIXED_HEADER_BYTES,
  packageLength,
  parseChunkTable,
  parseFixedHeader,
  recordsOffset,
  type PackageHeader,
  type PatcherLimits,
} from '../package-format.js';
import { checkSecurityCounter, checkTrust, type TrustedKey } from '../signature.js';
import { digestEquals } from '../stream-patcher.js';
import { describeSectors, makeGeometry, roundUp, type Flash, type FlashGeometry } from '../flash/flash.js';
import { readHandover, checkHandoverFits, type Handover, type Slot } from '../flash/handover.js';
import { Journal, deriveUpdateId, type JournalEntry } from '../flash/journal.js';
import { openPartition, type PartitionLayout, type PartitionView } from '../flash/partition-layout.js';
import { BackupRing, RING_PACK_RAM_BYTES } from './backup-ring.js';
import { ChunkReader, zeroSource } from './chunk-reader.js';
import { restoreByCopy } from './copy-restore.js';
import { FlashIo, IO_BLOCK } from './flash-io.js';
import { InPlaceRestore, planInPlace, type InPlacePlan } from './inplace-restore.js';
import { planRamBytes } from './plan-ram.js';
import { FailCode, reasonOf, RestoreFailure, type FailReason } from './restore-failure.js';

export { FailCode, type FailReason } from './restore-failure.js';

/** Boots of an unconfirmed new image before an A/B device rolls back (AliOS' boot counter). */
export const DEFAULT_MAX_BOOT_ATTEMPTS = 3;

/** What the bootloader does at the end of this boot. */
export type BootOutcome =
  /** No update pending: boot the active slot. */
  | { readonly kind: 'normal'; readonly slot: Slot }
  /** A new image was restored (now or earlier) and is on trial boot `attempt`. */
  | { readonly kind: 'trial'; readonly slot: Slot; readonly attempt: number }
  /** The update was refused before anything was destroyed (or rolled back): the old image boots. */
  | { readonly kind: 'old'; readonly slot: Slot; readonly reason: FailReason; readonly detail: string }
  /** In-place restore lost data it cannot recover: nothing is bootable; stay in the bootloader. */
  | { readonly kind: 'halt'; readonly reason: FailReason; readonly detail: string };

export interface BootOptions {
  flash: Flash;
  layout: PartitionLayout;
  limits?: PatcherLimits;
  /**
   * Keys the bootloader trusts. When given, a package must be signed by one of them, or nothing is
   * touched. The security counter is checked against the hand-over's recorded one either way.
   */
  trustedKeys?: readonly TrustedKey[];
  maxBootAttempts?: number;
  onProgress?: (event: { chunk: number; chunks: number }) => void;
}

/**
 * Backup ring an in-place restore needs at least on flash whose sectors are no larger than `sectorBytes`
 * and divide the split size: the old bytes two neighbouring chunks may keep at once, plus eight sectors (record headers and marks, partly filled sectors, one lost to a cut).
 * The bootloader checks the exact figure for the package and the device before its first erase.
 */
export function backupBytes(p: Pick<PackageHeader, 'splitSize' | 'chunks'>, sectorBytes = 4096): number {
  return (p.chunks.length > 1 ? 2 * p.splitSize : p.splitSize) + 8 * sectorBytes;
}

/**
 * RAM the restore takes for a package: the chunk decoder + an I/O block + the signed header and
 * signature, and in place the backup ring's packing (encoder, decoder, blocks) and the planner's read
 * maps (planRamBytes) on the slot `slot` (default: 4 KiB sectors), i.e. what a bootloader in C
 * allocates. Unlike streamPatcherRamBytes it has no JS_ENGINE_BYTES: the TypeScript restore's engine
 * overhead is not measured, and the boot fuzz bounds every flash read by this figure.
 */
export function restoreRamBytes(h: PackageHeader, slot?: FlashGeometry): number {
  const buffers = chunkDecoderRamBytes(h) + IO_BLOCK + FIXED_HEADER_BYTES + h.headerLength + h.signatureLength;
  if (h.mode !== 'inplace') return buffers;
  return buffers + RING_PACK_RAM_BYTES + planRamBytes(h, slot ?? makeGeometry({ size: roundUp(Math.max(h.newSize, h.oldSize, 1), 4096), sectorSize: 4096 }));
}

function slotView(flash: Flash, layout: PartitionLayout, slot: Slot): PartitionView {
  return openPartition(flash, layout, slot === 'A' ? 'appA' : 'appB');
}

/** Runs one boot: resumes or starts a pending restore, counts trial boots, and says what to boot. */
export function boot(opts: BootOptions): BootOutcome {
  const { flash, layout } = opts;
  const params = openPartition(flash, layout, 'params');
  const h = readHandover(params);
  if (h === null) return { kind: 'normal', slot: 'A' };
  if (h.confirmed || h.result === 'breakpoint') return { kind: 'normal', slot: h.activeSlot };
  const journal = new Journal(params);
  const id = deriveUpdateId(h.packageSha256, h.seq);
  const entry = journal.latestFor(id) ?? journal.reset(id);
  return new Restore(opts, h, journal, id).resume(entry);
}

class Restore {
  private readonly ota: PartitionView;
  private readonly io = new FlashIo();
  private readonly block = this.io.block;
  private readonly maxAttempts: number;
  /** In place, the old-image check found a restore of this update under way (its journal lost). */
  private resumedFromFlash = false;
  /** In place, the plan made by the check before destruction (made again on a resume). */
  private plan: InPlacePlan | null = null;

  constructor(
    private readonly opts: BootOptions,
    private readonly h: Handover,
    private readonly journal: Journal,
    private readonly id: number,
  ) {
    this.ota = openPartition(opts.flash, opts.layout, 'ota');
    this.maxAttempts = opts.maxBootAttempts ?? DEFAULT_MAX_BOOT_ATTEMPTS;
  }

  private log(state: JournalEntry['state'], chunk = 0, aux = 0): JournalEntry {
    return this.journal.append({ state, chunk, aux, updateId: this.id });
  }

  resume(entry: JournalEntry): BootOutcome {
    let e = entry;
    try {
      if (e.state === 'idle') {
        this.verifyBeforeDestruction();
        e = this.log('verified');
      }
      if (e.state === 'verified' || e.state === 'saved' || e.state === 'chunk-done') {
        // The hand-over is flash contents too, and was only checked when the restore began: check its
        // structure again before trusting it with a write (the hashes were verified then).
        if (entry.state !== 'idle') this.recheckStructure();
        this.restoreFrom(e);
        e = this.log('image-verified');
      }
    } catch (err) {
      if (!(err instanceof RestoreFailure)) throw err;
      e = this.log('failed', 0, FailCode[err.reason]);
      return this.failedOutcome(e, err.message);
    }
    if (e.state === 'image-verified') return this.trial(1);
    if (e.state === 'boot-switched') return this.trial(e.aux + 1);
    return this.failedOutcome(e, 'an earlier boot refused this update');
  }

  /** Boot `attempt` of the new image, or roll back once the attempts are used up. */
  private trial(attempt: number): BootOutcome {
    const h = this.h;
    const canRollBack = h.targetSlot !== h.activeSlot && h.rollback;
    if (attempt > this.maxAttempts && canRollBack) {
      const e = this.log('failed', 0, FailCode.rolledBack);
      return this.failedOutcome(e, `the new image was not confirmed within ${this.maxAttempts} boots`);
    }
    // In place there is no old image left to return to: keep booting the new one.
    this.log('boot-switched', 0, Math.min(attempt, 0xffff));
    return { kind: 'trial', slot: h.targetSlot, attempt };
  }

  private failedOutcome(e: JournalEntry, detail: string): BootOutcome {
    const reason = reasonOf(e.aux);
    // Only failures before the first erase of the active slot reach here in place, except these two.
    // A hand-over changed under way may be lying about the slots: a single-slot device was restoring in
    // place whatever it says now, an A/B device never writes the slot it runs from.
    const inPlace = reason === 'handover' ? this.opts.layout.appB === undefined : this.h.targetSlot === this.h.activeSlot;
    const destroyed = inPlace && (reason === 'newImage' || reason === 'backup' || reason === 'handover');
    if (destroyed) return { kind: 'halt', reason, detail };
    return { kind: 'old', slot: this.h.activeSlot, reason, detail };
  }

  // ---- checks before anything is destroyed -------------------------------------------------

  private readPackageHeader(): PackageHeader {
    return this.readPackage().header;
  }

  /** The package's signed header and signature block, validated against the hand-over. */
  private readPackage(): { header: PackageHeader; signed: Uint8Array; signature: Uint8Array } {
    const h = this.h;
    const limits = this.opts.limits ?? DEFAULT_LIMITS;
    try {
      const fixedBytes = new Uint8Array(FIXED_HEADER_BYTES);
      if (h.packageLength < FIXED_HEADER_BYTES) throw new PackageError('truncated', 'package shorter than a header');
      this.ota.read(h.packageOffset, fixedBytes);
      const fixed = parseFixedHeader(fixedBytes, limits);
      if (fixed.headerLength + fixed.signatureLength > h.packageLength) throw new PackageError('truncated', 'package shorter than its header');
      const signed = new Uint8Array(fixed.headerLength);
      this.ota.read(h.packageOffset, signed);
      const header = parseChunkTable(fixed, signed.subarray(FIXED_HEADER_BYTES), signed, limits);
      if (packageLength(header) !== h.packageLength)
        throw new PackageError('bad-header', `package declares ${packageLength(header)} bytes, the hand-over ${h.packageLength}`);
      const signature = new Uint8Array(header.signatureLength);
      this.ota.read(h.packageOffset + header.headerLength, signature);
      return { header, signed, signature };
    } catch (err) {
      if (err instanceof PackageError) throw new RestoreFailure('badPackage', err.message);
      throw err;
    }
  }

  private hashOf(view: Flash, offset: number, length: number): Uint8Array {
    return this.hashWithTail(view, offset, length, length).whole;
  }

  /** SHA-256 of `length` bytes and, in the same pass, of the bytes from `tailFrom` on (the package's records). */
  private hashWithTail(view: Flash, offset: number, length: number, tailFrom: number): { whole: Uint8Array; tail: Uint8Array } {
    const whole = sha256.create();
    const tail = sha256.create();
    for (let off = 0; off < length; off += IO_BLOCK) {
      const n = Math.min(IO_BLOCK, length - off);
      view.read(offset + off, this.block, 0, n);
      whole.update(this.block.subarray(0, n));
      if (off + n > tailFrom) tail.update(this.block.subarray(Math.max(0, tailFrom - off), n));
    }
    return { whole: whole.digest(), tail: tail.digest() };
  }

  /** On resume: the structural checks of verifyBeforeDestruction, judged as a hand-over changed under way. */
  private recheckStructure(): void {
    try {
      this.checkFits();
      this.checkStructure(this.readPackageHeader());
    } catch (err) {
      if (err instanceof RestoreFailure) throw new RestoreFailure('handover', `the hand-over changed while its update was under way: ${err.message}`);
      throw err;
    }
  }

  private checkFits(): void {
    try {
      checkHandoverFits(this.h, this.opts.layout);
    } catch (err) {
      throw new RestoreFailure('layout', (err as Error).message);
    }
  }

  /** What the hand-over, the package header and the layout must agree on (no hashing). */
  private checkStructure(p: PackageHeader): void {
    const h = this.h;
    const { flash, layout } = this.opts;
    this.checkFits();
    const target = slotView(flash, layout, h.targetSlot);
    if (h.firmwareType === 'raw') {
      if (p.mode !== 'raw') throw new RestoreFailure('badPackage', `an OTA_RAW hand-over names a ${p.mode} package`);
      if (p.newSize !== h.imageSize) throw new RestoreFailure('badPackage', `the package holds ${p.newSize} bytes, the hand-over says ${h.imageSize}`);
      if (p.newSize > target.geometry.size) throw new RestoreFailure('layout', `the image does not fit slot ${h.targetSlot}`);
      if (h.targetSlot === h.activeSlot && layout.appB !== undefined) throw new RestoreFailure('layout', 'a full image is copied into the other slot of an A/B device');
      return;
    }
    const inplace = h.targetSlot === h.activeSlot;
    if (p.mode !== (inplace ? 'inplace' : 'ab'))
      throw new RestoreFailure('layout', `a ${p.mode} package cannot restore slot ${h.targetSlot} from slot ${h.activeSlot}`);
    if (p.splitSize !== h.splitSize || p.diffVersion !== h.diffVersion)
      throw new RestoreFailure('badPackage', 'split size or diff_version differ between the package and the hand-over');
    if (Math.max(p.newSize, inplace ? p.oldSize : 0) > target.geometry.size)
      throw new RestoreFailure('layout', `the image does not fit slot ${h.targetSlot}`);
    const active = slotView(flash, layout, h.activeSlot);
    if (p.oldSize > active.geometry.size) throw new RestoreFailure('oldImage', 'the old image is larger than its slot');
  }

  private verifyBeforeDestruction(): void {
    const h = this.h;
    const { flash, layout } = this.opts;
    this.checkFits();
    // One pass over the package hashes it whole (against the hand-over) and its records (against the
    // signed header). The header is read first to know where the records start; a package that does
    // not parse is still judged by the hand-over hash first.
    let read: ReturnType<Restore['readPackage']> | RestoreFailure;
    try {
      read = this.readPackage();
    } catch (err) {
      if (!(err instanceof RestoreFailure)) throw err;
      read = err;
    }
    const payloadFrom = read instanceof RestoreFailure ? h.packageLength : recordsOffset(read.header);
    const hashes = this.hashWithTail(this.ota, h.packageOffset, h.packageLength, payloadFrom);
    if (!digestEquals(hashes.whole, h.packageSha256))
      throw new RestoreFailure('packageHash', 'the package in the OTA partition does not match the hand-over SHA-256');
    if (read instanceof RestoreFailure) throw read;
    const { header: p, signed, signature } = read;
    // The signed header names the payload's SHA-256: one signature covers every byte the restore reads.
    try {
      if (this.opts.trustedKeys !== undefined) checkTrust(p, signed, signature, { keys: this.opts.trustedKeys, securityCounter: h.securityCounter });
      else checkSecurityCounter(p, h.securityCounter);
    } catch (err) {
      if (!(err instanceof PackageError)) throw err;
      throw new RestoreFailure(err.code === 'security-counter' ? 'securityCounter' : 'signature', err.message);
    }
    if (!digestEquals(hashes.tail, p.payloadSha256))
      throw new RestoreFailure('badPackage', 'the package records do not match the payload SHA-256 of its header');
    this.checkStructure(p);
    if (h.firmwareType === 'raw') return;
    const inplace = h.targetSlot === h.activeSlot;
    const active = slotView(flash, layout, h.activeSlot);
    if (!digestEquals(this.hashOf(active, 0, p.oldSize), p.oldSha256)) {
      // In place, a slot that is no longer OLD may be this very restore, half done, whose journal was lost
      // (more than the one record a power cut can take). Its backup ring then holds records of this
      // update: resume from what the flash shows rather than boot a half-written image as the old one.
      if (inplace && new BackupRing(openPartition(flash, layout, 'backup'), this.id).hasRecords()) {
        this.resumedFromFlash = true;
        return;
      }
      throw new RestoreFailure('oldImage', `slot ${h.activeSlot} does not hold the old image this package was made for`);
    }
    // In place, refuse (before the first erase) a flash on which this package cannot be restored.
    if (inplace) this.plan = this.planInPlace(p);
  }

  private planInPlace(p: PackageHeader): InPlacePlan {
    const { flash, layout } = this.opts;
    const describe = `sector map ${describeSectors(layout.flash)}, ${layout.flash.programUnit}-byte program unit`;
    return planInPlace(p, new ChunkReader(p, this.ota, this.h.packageOffset), slotView(flash, layout, this.h.activeSlot).geometry, openPartition(flash, layout, 'backup').geometry, describe);
  }

  // ---- the restore proper -----------------------------------------------------------------

  private restoreFrom(e: JournalEntry): void {
    const h = this.h;
    const { flash, layout } = this.opts;
    const p = this.readPackageHeader();
    const target = slotView(flash, layout, h.targetSlot);
    const chunks = new ChunkReader(p, this.ota, h.packageOffset);
    const log = (state: JournalEntry['state'], chunk: number, aux: number) => void this.log(state, chunk, aux);
    const progress = (k: number) => this.opts.onProgress?.({ chunk: k + 1, chunks: p.chunks.length });
    if (h.firmwareType === 'raw') {
      restoreByCopy({ p, chunks, source: zeroSource, target, io: this.io, log, progress }, e);
    } else if (h.targetSlot === h.activeSlot) {
      const ring = new BackupRing(openPartition(flash, layout, 'backup'), this.id);
      const plan = this.plan ?? this.planInPlace(p);
      new InPlaceRestore({ p, chunks, target, ring, io: this.io, log, progress }, plan, e.state !== 'verified' || this.resumedFromFlash).run(e);
    } else {
      const source = slotView(flash, layout, h.activeSlot);
      restoreByCopy({ p, chunks, source: { read: (off, dst, dstOff, len) => source.read(off, dst, dstOff, len) }, target, io: this.io, log, progress }, e);
    }
    if (!digestEquals(this.hashOf(target, 0, p.newSize), p.newSha256))
      throw new RestoreFailure('newImage', `slot ${h.targetSlot} does not match the new image's SHA-256 after the restore`);
  }
}
