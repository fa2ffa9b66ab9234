// The bootloader's side of an update: restore the new image from the package in the OTA partition,
// in place or into the other slot, resumable after a power cut at any flash operation.
//
// Every state is persisted in the journal (flash/journal.ts) before the next step depends on it:
//   idle ──verify──▶ verified ──▶ [backed-up i ──▶ chunk-done i]* ──▶ image-verified ──▶ boot-switched(n)
//     └──────────────┴──── any check fails before destruction ──▶ failed (the old image boots)
// The hand-over record is read-only here; the application's confirmation is a new hand-over record.
// Only the package and the images are judged: a flash error (or a power cut) propagates out of boot()
// and the next boot resumes from the journal, as after any reset.
import { sha256 } from '@noble/hashes/sha2.js';
import { ChunkDecoder, chunkDecoderRamBytes } from '../chunk-decoder.js';
import { crc32 } from '../crc32.js';
import { PackageError } from '../package-error.js';
import {
  DEFAULT_LIMITS,
  FIXED_HEADER_BYTES,
  chunkLength,
  packageLength,
  parseChunkTable,
  parseFixedHeader,
  recordsOffset,
  type PackageHeader,
  type PatcherLimits,
} from '../package-format.js';
import { checkSecurityCounter, checkTrust, type TrustedKey } from '../signature.js';
import { digestEquals } from '../stream-patcher.js';
import type { Flash } from '../flash/flash.js';
import { readHandover, checkHandoverFits, type Handover, type Slot } from '../flash/handover.js';
import { Journal, deriveUpdateId, type JournalEntry } from '../flash/journal.js';
import { openPartition, type PartitionLayout, type PartitionView } from '../flash/partition-layout.js';

/** Boots of an unconfirmed new image before an A/B device rolls back (AliOS' boot counter). */
export const DEFAULT_MAX_BOOT_ATTEMPTS = 3;
const IO_BLOCK = 4096;

/** Why a restore gave up; stored in the journal's aux field of a 'failed' record. */
export const FailCode = {
  badPackage: 1,
  packageHash: 2,
  oldImage: 3,
  layout: 4,
  newImage: 5,
  backup: 6,
  rolledBack: 7,
  signature: 8,
  securityCounter: 9,
  /** The hand-over no longer fits the device or its package while the restore was under way. */
  handover: 10,
} as const;
export type FailReason = keyof typeof FailCode;
const reasonOf = (aux: number): FailReason =>
  (Object.keys(FailCode) as FailReason[]).find((k) => FailCode[k] === aux) ?? 'badPackage';

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

class RestoreFailure extends Error {
  constructor(
    readonly reason: FailReason,
    message: string,
  ) {
    super(message);
  }
}

/** Backup an in-place restore needs: two chunk slots (one chunk waits while the next is decoded). */
export function backupBytes(p: Pick<PackageHeader, 'splitSize' | 'chunks'>): number {
  return p.chunks.length > 1 ? 2 * p.splitSize : p.splitSize;
}

/**
 * RAM the restore's buffers take for a package: the chunk decoder + an I/O block + the signed header and
 * signature, i.e. what a bootloader in C allocates. Unlike streamPatcherRamBytes it has no
 * JS_ENGINE_BYTES: the TypeScript restore's engine overhead is not measured, and the boot fuzz bounds
 * every flash read by this figure.
 */
export function restoreRamBytes(h: PackageHeader): number {
  return chunkDecoderRamBytes(h) + IO_BLOCK + FIXED_HEADER_BYTES + h.headerLength + h.signatureLength;
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
  private readonly block = new Uint8Array(IO_BLOCK);
  private readonly maxAttempts: number;

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
      if (e.state === 'verified' || e.state === 'backed-up' || e.state === 'chunk-done') {
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
    const ss = layout.flash.sectorSize;
    const inplace = h.targetSlot === h.activeSlot;
    if (p.mode !== (inplace ? 'inplace' : 'ab'))
      throw new RestoreFailure('layout', `a ${p.mode} package cannot restore slot ${h.targetSlot} from slot ${h.activeSlot}`);
    if (p.splitSize !== h.splitSize || p.diffVersion !== h.diffVersion)
      throw new RestoreFailure('badPackage', 'split size or diff_version differ between the package and the hand-over');
    if (p.splitSize % ss !== 0) throw new RestoreFailure('layout', `split size ${p.splitSize} is not a multiple of the ${ss}-byte sector`);
    if (Math.max(p.newSize, inplace ? p.oldSize : 0) > target.geometry.size)
      throw new RestoreFailure('layout', `the image does not fit slot ${h.targetSlot}`);
    const active = slotView(flash, layout, h.activeSlot);
    if (p.oldSize > active.geometry.size) throw new RestoreFailure('oldImage', 'the old image is larger than its slot');
    if (inplace && layout.backup.size < backupBytes(p)) throw new RestoreFailure('layout', `the backup partition is smaller than the ${backupBytes(p)} bytes (two chunks) an in-place restore needs`);
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
      // (more than the one record a power cut can take). Its backup slots then hold chunks of this
      // package: resume from what the flash shows rather than boot a half-written image as the old one.
      if (inplace && this.backupHoldsOurChunk(p)) return;
      throw new RestoreFailure('oldImage', `slot ${h.activeSlot} does not hold the old image this package was made for`);
    }
    // Backup slots are probed on resume: nothing left by an earlier update may look like one of ours.
    if (inplace) this.eraseRegion(openPartition(flash, layout, 'backup'), 0, backupBytes(p));
  }

  /** Whether either backup slot holds a chunk of `p` that belongs in it (chunk i lives in slot i % 2). */
  private backupHoldsOurChunk(p: PackageHeader): boolean {
    const backup = openPartition(this.opts.flash, this.opts.layout, 'backup');
    const n = p.chunks.length;
    const slots = Math.min(2, n);
    const last = chunkLength(p, n - 1);
    for (let k = 0; k < slots; k++) {
      const full = this.crcOf(backup, k * p.splitSize, p.splitSize);
      const tail = last === p.splitSize ? full : this.crcOf(backup, k * p.splitSize, last);
      for (let i = k; i < n; i += 2) if (p.chunks[i].crc32 === (i === n - 1 ? tail : full)) return true;
    }
    return false;
  }

  // ---- the restore proper -----------------------------------------------------------------

  private restoreFrom(e: JournalEntry): void {
    if (this.h.firmwareType === 'raw') return this.copyRaw(e);
    const h = this.h;
    const { flash, layout } = this.opts;
    const p = this.readPackageHeader();
    const source = slotView(flash, layout, h.activeSlot);
    const target = slotView(flash, layout, h.targetSlot);
    const decoder = new ChunkDecoder(p, { read: (off, dst, dstOff, len) => source.read(off, dst, dstOff, len) });
    // The journal is flash contents too: a chunk index it names must exist in this package.
    if (e.state !== 'verified' && e.chunk >= p.chunks.length) throw new RestoreFailure('backup', `the journal names chunk ${e.chunk} of ${p.chunks.length}`);
    if (h.targetSlot === h.activeSlot) this.restoreInPlace(p, decoder, target, e);
    else this.restoreOtherSlot(p, decoder, target, e);
    if (!digestEquals(this.hashOf(target, 0, p.newSize), p.newSha256))
      throw new RestoreFailure('newImage', `slot ${h.targetSlot} does not match the new image's SHA-256 after the restore`);
  }

  /** Decodes chunk i, judging a bad record as the package's fault (a flash error propagates). */
  private decode(p: PackageHeader, decoder: ChunkDecoder, i: number, destroyed: boolean): Uint8Array {
    const entry = p.chunks[i];
    const recordsAt = this.h.packageOffset + recordsOffset(p);
    try {
      return decoder.decodeChunk(i, entry, (off, dst, dstOff, len) => this.ota.read(recordsAt + entry.recordOffset + off, dst, dstOff, len));
    } catch (err) {
      if (!(err instanceof PackageError)) throw err;
      // Sources are intact by construction; a record that fails here is a bad package. Until the
      // first region is rewritten nothing is lost; after that, in place, the image is half new.
      throw new RestoreFailure(destroyed ? 'newImage' : 'badPackage', err.message);
    }
  }

  /** A/B: the old slot stays intact, so each chunk is decoded and written straight into the other slot. */
  private restoreOtherSlot(p: PackageHeader, decoder: ChunkDecoder, target: Flash, e: JournalEntry): void {
    for (let i = e.state === 'verified' ? 0 : e.chunk + 1; i < p.chunks.length; i++) {
      const data = this.decode(p, decoder, i, false);
      if (!this.regionEquals(target, i * p.splitSize, data)) this.writeRegion(target, i * p.splitSize, data);
      this.log('chunk-done', i, p.chunks[i].crc32);
      this.opts.onProgress?.({ chunk: i + 1, chunks: p.chunks.length });
    }
  }

  /**
   * In place, with the write of each chunk delayed by one: chunk i is decoded while region i-1 still
   * holds its old bytes (the window of docs/FORMAT.md), saved to backup slot i % 2 ('backed-up i'),
   * and only then is chunk i-1 copied from its slot over region i-1 ('chunk-done i-1').
   * Invariant: regions before m hold NEW, regions after m hold OLD, region m is OLD or being rewritten
   * from its slot, and chunk m+1 may wait in its slot. The journal gives a lower bound on m; resume
   * finds the rest from the flash (CRCs of regions and slots), so a lost newest record costs nothing.
   */
  private restoreInPlace(p: PackageHeader, decoder: ChunkDecoder, target: Flash, e: JournalEntry): void {
    const n = p.chunks.length;
    const S = p.splitSize;
    const backup = openPartition(this.opts.flash, this.opts.layout, 'backup');
    const slotAt = (i: number) => (i % 2) * S;
    const holds = (view: Flash, offset: number, i: number) => this.crcOf(view, offset, chunkLength(p, i)) === p.chunks[i].crc32;
    /** Copies chunk i from its slot over region i (the slot must hold it). */
    const flush = (i: number) => {
      if (!holds(backup, slotAt(i), i)) throw new RestoreFailure('backup', `the backup of chunk ${i} is corrupt`);
      this.copyRegion(backup, slotAt(i), target, i * S, chunkLength(p, i));
      this.log('chunk-done', i, p.chunks[i].crc32);
      this.opts.onProgress?.({ chunk: i + 1, chunks: n });
    };

    // Where are we? Start from the journal's lower bound, then believe the flash.
    let m = e.state === 'verified' ? 0 : e.state === 'backed-up' ? Math.max(0, e.chunk - 1) : e.chunk + 1;
    while (m < n && holds(target, m * S, m)) m++;
    let pending = -1;
    let destroyed = m > 0;
    if (m < n) {
      // A slot can hold bytes equal to a chunk by coincidence (a repeated chunk saved earlier), so a
      // probe only counts when the whole state it implies is on flash; bytes that merely equal the chunk
      // are then the right bytes anyway.
      if (m + 1 < n && holds(backup, slotAt(m + 1), m + 1) && holds(backup, slotAt(m), m)) {
        // Chunks m and m+1 are saved: chunk m was being (or about to be) written from its slot.
        flush(m);
        pending = m + 1;
        destroyed = true;
        m += 2;
      } else if (holds(backup, slotAt(m), m)) {
        // Chunk m is saved and region m still old: it waits for chunk m+1 to be decoded.
        pending = m;
        m += 1;
      }
    }

    for (let i = m; i < n; i++) {
      const data = this.decode(p, decoder, i, destroyed);
      const unchanged = this.regionEquals(target, i * S, data);
      if (!unchanged) {
        this.writeRegion(backup, slotAt(i), data);
        this.log('backed-up', i, p.chunks[i].crc32);
      }
      if (pending >= 0) {
        flush(pending);
        destroyed = true;
      }
      pending = -1;
      if (unchanged) {
        this.log('chunk-done', i, p.chunks[i].crc32);
        this.opts.onProgress?.({ chunk: i + 1, chunks: n });
      } else {
        pending = i;
      }
    }
    if (pending >= 0) flush(pending);
  }

  private crcOf(view: Flash, offset: number, length: number): number {
    let crc = 0; // the CRC of nothing, which a running CRC continues from
    for (let off = 0; off < length; off += IO_BLOCK) {
      const k = Math.min(IO_BLOCK, length - off);
      view.read(offset + off, this.block, 0, k);
      crc = crc32(this.block.subarray(0, k), crc);
    }
    return crc;
  }

  /** Erase, then copy `length` bytes from one flash area to another through the I/O block; read back. */
  private copyRegion(from: Flash, fromOffset: number, to: Flash, toOffset: number, length: number): void {
    for (let attempt = 0; ; attempt++) {
      this.eraseRegion(to, toOffset, length);
      for (let off = 0; off < length; off += IO_BLOCK) {
        const k = Math.min(IO_BLOCK, length - off);
        from.read(fromOffset + off, this.block, 0, k);
        this.program(to, toOffset + off, this.block.subarray(0, k));
      }
      if (this.crcOf(to, toOffset, length) === this.crcOf(from, fromOffset, length)) return;
      if (attempt === 1) throw new RestoreFailure('backup', `flash at ${toOffset} does not read back what was written`);
    }
  }

  /** OTA_RAW: the package's records are the image; copy them unit by unit (the OTA partition stays intact). */
  private copyRaw(e: JournalEntry): void {
    const h = this.h;
    if (h.firmwareType !== 'raw') return;
    const p = this.readPackageHeader();
    const imageAt = h.packageOffset + recordsOffset(p);
    const target = slotView(this.opts.flash, this.opts.layout, h.targetSlot);
    const unit = this.opts.layout.backup.size;
    const units = Math.ceil(h.imageSize / unit);
    for (let i = e.state === 'verified' ? 0 : e.chunk + 1; i < units; i++) {
      const start = i * unit;
      const len = Math.min(unit, h.imageSize - start);
      this.eraseRegion(target, start, len);
      for (let off = 0; off < len; off += IO_BLOCK) {
        const n = Math.min(IO_BLOCK, len - off);
        this.ota.read(imageAt + start + off, this.block, 0, n);
        this.program(target, start + off, this.block.subarray(0, n));
      }
      this.log('chunk-done', i, 0);
      this.opts.onProgress?.({ chunk: i + 1, chunks: units });
    }
    if (!digestEquals(this.hashOf(target, 0, h.imageSize), p.newSha256))
      throw new RestoreFailure('newImage', `slot ${h.targetSlot} does not match the image's SHA-256 after the copy`);
  }

  private regionEquals(view: Flash, offset: number, data: Uint8Array): boolean {
    for (let off = 0; off < data.length; off += IO_BLOCK) {
      const n = Math.min(IO_BLOCK, data.length - off);
      view.read(offset + off, this.block, 0, n);
      for (let k = 0; k < n; k++) if (this.block[k] !== data[off + k]) return false;
    }
    return true;
  }

  private eraseRegion(view: Flash, offset: number, length: number): void {
    const ss = view.geometry.sectorSize;
    for (let s = offset / ss; s * ss < offset + length; s++) view.erase(s);
  }

  /** Programs `data` at `offset` (a program-unit multiple), padding the tail with erased bytes. */
  private program(view: Flash, offset: number, data: Uint8Array): void {
    const unit = view.geometry.programUnit;
    const whole = data.length - (data.length % unit);
    if (whole > 0) view.program(offset, data.subarray(0, whole));
    if (whole < data.length) {
      const tail = new Uint8Array(unit).fill(0xff);
      tail.set(data.subarray(whole));
      view.program(offset + whole, tail);
    }
  }

  /** Erase, program and read back; a mismatch (worn or failing flash) is retried once, then fatal. */
  private writeRegion(view: Flash, offset: number, data: Uint8Array): void {
    for (let attempt = 0; ; attempt++) {
      this.eraseRegion(view, offset, data.length);
      this.program(view, offset, data);
      if (this.regionEquals(view, offset, data)) return;
      if (attempt === 1) throw new RestoreFailure('backup', `flash at ${offset} does not read back what was written`);
    }
  }
}
