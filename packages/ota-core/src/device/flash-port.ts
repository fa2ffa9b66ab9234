// The device's flash port: what a board implements so the OTA service can store a
// package and hand it to the bootloader. The five callbacks mirror AliOS Things'
// `hal_ota_module_s` (init / write / read / set_boot / rollback); the rest are the
// board services the service also needs (reset into the bootloader, read the running
// image, a small persistent store). docs/PORTING.md describes the contract.
//
// createFlashDirPort() is the reference port over a simulated device's flash
// directory (DIR/flash.bin + DIR/layout.json, plus DIR/device.json for the state),
// which is what `otadiff device` runs on a Linux host.

import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  boot,
  confirmBoot,
  createFlashDir,
  defaultLayout,
  eraseRange,
  FIXED_HEADER_BYTES,
  isErased,
  openFlashDir,
  openPartition,
  parseFixedHeader,
  padToUnit,
  readBytes,
  recordsOffset,
  roundUp,
  runningSlot,
  sectorAt,
  sectorCount,
  sectorLength,
  sectorStart,
  smallestSector,
  setBoot as stageSetBoot,
  writeHandover,
  readHandover,
  type BootOutcome,
  type Flash,
  type PartitionLayout,
  type Slot,
  type OverwriteMode,
  type TrustedKey,
  type UpdateType,
} from '@otadiff/patch-apply';
import { emptyDeviceState, serializeDeviceState } from './device-state.js';
import { isValidVersion } from '../protocol/version.js';

export class FlashPortError extends Error {
  override name = 'FlashPortError';
}

/** AliOS' `ota_finish_param_t`: what set_boot hands to the bootloader. */
export interface OtaFinishParam {
  /** Default 'app'. */
  updateType?: UpdateType;
  /** FINISH: the package is complete; BREAKPOINT: the download stopped part-way (nothing to restore). */
  result: 'finish' | 'breakpoint';
  /** RAW: a raw package (the full image behind the signed header); DIFF: a diff package. */
  firmwareType: 'raw' | 'diff';
  /** DIFF: the package's split size (checked against its header when given). */
  splitSize?: number;
  /** DIFF: the package's diff_version (checked against its header when given). */
  diffVersion?: number;
  /** Return to the old image if the new one is never confirmed (A/B only). Default true. */
  rollback?: boolean;
  /** Bytes of the package, stored from offset 0 of the OTA partition. */
  packageLength: number;
  /** SHA-256 of those bytes; the bootloader re-checks it before touching anything. */
  packageSha256: Uint8Array;
}

/** The five callbacks of AliOS Things' hal_ota_module_s. */
export interface OtaFlashPort {
  /** Prepare the OTA partition: offset 0 erases it; a non-zero offset resumes a download at that breakpoint. */
  init(offset: number): Promise<void>;
  /**
   * Store package bytes at `offset` of the OTA partition (any offset and length). A port may hold
   * the bytes of a last, partial program unit in RAM until the unit fills or set_boot
   * (`info.durableUnit`): they are lost to a power cut, so only offsets at multiples of it are
   * breakpoints a download may resume from.
   */
  write(offset: number, bytes: Uint8Array): Promise<void>;
  /** Read back package bytes from the OTA partition. */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Write the hand-over record for the bootloader. */
  setBoot(param: OtaFinishParam): Promise<void>;
  /**
   * AliOS calls it "rollback", but the application calls it after a good start: it
   * confirms the running image, so the bootloader stops counting trial boots and will
   * not roll it back.
   */
  rollback(): Promise<void>;
}

export interface OtaPortInfo {
  /** Bytes of the OTA partition (the largest package). */
  readonly otaSize: number;
  /** Smallest erase sector of the flash (informational: any split size restores on any sector map). */
  readonly sectorSize: number;
  /** Application slots: ['A'] for in-place devices, ['A', 'B'] for A/B devices. */
  readonly slots: readonly Slot[];
  /** Bytes of each slot. */
  readonly slotSize: Readonly<Partial<Record<Slot, number>>>;
  /** Bytes of the in-place restore's backup ring (patch-apply's backupBytes is the least a package needs). */
  readonly backupSize: number;
  /**
   * Written bytes survive a power cut only in whole units of this many bytes from offset 0 (1: every
   * byte once write() returns). Program-once (ECC) flash cannot program a unit twice, so its port
   * keeps a partial last unit in RAM: the service saves its download breakpoint only at multiples
   * of this. Default 1.
   */
  readonly durableUnit?: number;
}

/** A board: the five callbacks plus the services the OTA service needs around them. */
export interface OtaPort extends OtaFlashPort {
  readonly info: OtaPortInfo;
  /** Reset: run the bootloader (which resumes a pending restore) and report what it boots. */
  powerOn(): Promise<BootOutcome>;
  /** Read the image in the slot that booted last (for a diff's old-image check). */
  readImage(offset: number, length: number): Promise<Uint8Array>;
  /**
   * Anti-rollback: the highest package security counter confirmed on this device (the hand-over
   * record's; 0 when there is none). The service refuses a package below it, as the bootloader does.
   */
  securityCounter(): Promise<number>;
  /** Persistent storage for the service's state (AliOS keeps it in KV); null when empty. */
  loadState(): Promise<string | null>;
  saveState(text: string): Promise<void>;
  close(): Promise<void>;
}

export const DEVICE_STATE_FILE = 'device.json';

export interface FlashDirPortOptions {
  /** Wrap the device flash, e.g. in patch-apply's FaultyFlash to cut the power. */
  wrapFlash?: (flash: Flash) => Flash;
  /** Boots of an unconfirmed image before an A/B device rolls back (default 3). */
  maxBootAttempts?: number;
  /**
   * Keys the bootloader trusts: when given, boot() refuses (before touching anything) a package that
   * no key signed. Give the device the same keys as its OTA service.
   */
  trustedKeys?: readonly TrustedKey[];
  onRestoreProgress?: (event: { chunk: number; chunks: number }) => void;
}

export interface FlashDirPort extends OtaPort {
  readonly dir: string;
  /** The device flash as the port uses it (wrapped when wrapFlash was given). */
  readonly flash: Flash;
  readonly layout: PartitionLayout;
  /** Slot that booted last, once powerOn() has run. */
  readonly bootedSlot: Slot | undefined;
}

function checkInt(v: number, what: string): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new FlashPortError(`${what} must be a non-negative integer, got ${v}`);
}

/** The reference port over a flash directory (see patch-apply's flash-dir.ts). */
export function createFlashDirPort(dir: string, opts: FlashDirPortOptions = {}): FlashDirPort {
  const fd = openFlashDir(dir);
  const flash = opts.wrapFlash ? opts.wrapFlash(fd.flash) : fd.flash;
  const layout = fd.layout;
  const ota = openPartition(flash, layout, 'ota');
  const pu = layout.flash.programUnit;
  const og = ota.geometry;
  const otaSize = layout.ota.size;
  // Program-once (ECC) flash: a unit may be programmed once between erases, so a write that ends
  // inside a unit keeps that unit's bytes here until the unit fills (or set_boot pads it).
  const programOnce = fd.device.overwrite === 'program-once' && pu > 1;
  let tail: { at: number; bytes: Uint8Array } | undefined;
  const statePath = join(dir, DEVICE_STATE_FILE);
  let booted: Slot | undefined;
  let closed = false;

  const live = (): void => {
    if (closed) throw new FlashPortError('the flash port is closed');
  };
  const checkSpan = (offset: number, length: number, what: string): void => {
    checkInt(offset, `${what} offset`);
    checkInt(length, `${what} length`);
    if (offset + length > otaSize) throw new FlashPortError(`${what} [${offset}, +${length}) runs past the ${otaSize}-byte OTA partition`);
  };
  // Erase only sectors that hold anything: less wear, and a clean partition costs no erase.
  const eraseDirtyFrom = (firstSector: number): void => {
    for (let s = firstSector; s < sectorCount(og); s++) if (!isErased(ota, sectorStart(og, s), sectorLength(og, s))) ota.erase(s);
  };
  // Program `data` at a program-unit-aligned offset, padding the last unit with erased bytes.
  const programPadded = (offset: number, data: Uint8Array): void => {
    if (data.length === 0) return;
    ota.program(offset, padToUnit(data, og));
  };
  const flushTail = (): void => {
    if (tail === undefined) return;
    const t = tail;
    tail = undefined;
    programPadded(t.at, t.bytes);
  };
  // What the partition holds, the RAM tail included.
  const readOverlaid = (offset: number, length: number): Uint8Array => {
    const out = readBytes(ota, offset, length);
    if (tail !== undefined) {
      const from = Math.max(offset, tail.at);
      const to = Math.min(offset + length, tail.at + tail.bytes.length);
      if (from < to) out.set(tail.bytes.subarray(from - tail.at, to - tail.at), from - offset);
    }
    return out;
  };
  const writeProgramOnce = (offset: number, bytes: Uint8Array): void => {
    const start = Math.floor(offset / pu) * pu;
    let prefix: Uint8Array;
    if (tail !== undefined && tail.at === start && tail.bytes.length <= offset - start) {
      // Continues the held unit (a gap, if any, stays erased).
      prefix = new Uint8Array(offset - start).fill(og.erasedValue);
      prefix.set(tail.bytes);
      tail = undefined;
    } else {
      flushTail();
      if (offset !== start && !isErased(ota, start, pu))
        throw new FlashPortError(`write at ${offset}: its program unit at ${start} was programmed already, and this flash programs a unit once (init the breakpoint first)`);
      prefix = new Uint8Array(offset - start).fill(og.erasedValue);
    }
    const buf = new Uint8Array(prefix.length + bytes.length);
    buf.set(prefix);
    buf.set(bytes, prefix.length);
    const whole = Math.floor(buf.length / pu) * pu;
    if (whole > 0) ota.program(start, buf.subarray(0, whole));
    if (whole < buf.length) tail = { at: start + whole, bytes: buf.slice(whole) };
  };

  const port: FlashDirPort = {
    dir,
    flash,
    layout,
    get bootedSlot() {
      return booted;
    },
    info: {
      otaSize,
      durableUnit: programOnce ? pu : 1,
      sectorSize: smallestSector(og),
      slots: layout.appB === undefined ? ['A'] : ['A', 'B'],
      slotSize: layout.appB === undefined ? { A: layout.appA.size } : { A: layout.appA.size, B: layout.appB.size },
      backupSize: layout.backup.size,
    },

    async init(offset) {
      live();
      checkSpan(offset, 0, 'init');
      // Held bytes at or past the breakpoint are dropped; before it they stay held.
      if (tail !== undefined) {
        if (tail.at >= offset) tail = undefined;
        else if (tail.at + tail.bytes.length > offset) tail = { at: tail.at, bytes: tail.bytes.slice(0, offset - tail.at) };
      }
      if (offset === 0) return eraseDirtyFrom(0);
      if (offset >= otaSize) return;
      // A write after the breakpoint may have reached the flash (torn or whole) before the
      // power went: bytes past the breakpoint must read erased before they are programmed.
      const s0 = sectorAt(og, offset);
      const start = sectorStart(og, s0);
      const rest = start + sectorLength(og, s0) - offset;
      if (offset !== start && !isErased(ota, offset, rest)) {
        const prefix = readOverlaid(start, offset - start);
        ota.erase(s0);
        if (programOnce) {
          // Whole units again; a partial last one is held (it cannot be programmed twice).
          const whole = Math.floor(prefix.length / pu) * pu;
          if (tail !== undefined && tail.at < start + whole) throw new FlashPortError('init: inconsistent held unit');
          if (whole > 0) ota.program(start, prefix.subarray(0, whole));
          tail = whole < prefix.length ? { at: start + whole, bytes: prefix.slice(whole) } : undefined;
        } else programPadded(start, prefix);
      }
      eraseDirtyFrom(offset === start ? s0 : s0 + 1);
    },

    async write(offset, bytes) {
      live();
      checkSpan(offset, bytes.length, 'write');
      if (bytes.length === 0) return;
      if (pu === 1) return ota.program(offset, bytes);
      if (programOnce) return writeProgramOnce(offset, bytes);
      // Partial program units: merge with what the unit already holds (erased or earlier bytes).
      const start = Math.floor(offset / pu) * pu;
      const end = roundUp(offset + bytes.length, pu);
      const buf = readBytes(ota, start, end - start);
      buf.set(bytes, offset - start);
      ota.program(start, buf);
    },

    async read(offset, length) {
      live();
      checkSpan(offset, length, 'read');
      return readOverlaid(offset, length);
    },

    async setBoot(p) {
      live();
      checkSpan(0, p.packageLength, 'package');
      if (p.packageLength === 0) throw new FlashPortError('set_boot: empty package');
      if (!(p.packageSha256 instanceof Uint8Array) || p.packageSha256.length !== 32) throw new FlashPortError('set_boot: packageSha256 must be 32 bytes');
      // The package is complete: its last, partial unit goes to the flash (padded with erased bytes).
      flushTail();
      const updateType = p.updateType ?? 'app';
      const rollback = p.rollback ?? true;
      if (p.result === 'breakpoint') {
        // Nothing to restore: a record the bootloader boots past, naming the running slot.
        const slot = runningSlot(flash, layout);
        const previous = readHandover(openPartition(flash, layout, 'params'));
        const base = {
          updateType,
          result: 'breakpoint' as const,
          rollback,
          packageOffset: 0,
          packageLength: p.packageLength,
          packageSha256: p.packageSha256,
          targetSlot: slot,
          activeSlot: slot,
          bootCount: 0,
          confirmed: true,
          securityCounter: previous?.securityCounter ?? 0,
        };
        const params = openPartition(flash, layout, 'params');
        if (p.firmwareType === 'raw') writeHandover(params, { ...base, firmwareType: 'raw', imageSize: p.packageLength });
        else writeHandover(params, { ...base, firmwareType: 'diff', splitSize: p.splitSize ?? smallestSector(og), diffVersion: p.diffVersion ?? 0 });
        return;
      }
      if (p.result !== 'finish') throw new FlashPortError(`set_boot: unknown result ${String(p.result)}`);
      if (p.firmwareType !== 'diff' && p.firmwareType !== 'raw') throw new FlashPortError(`set_boot: unknown firmware type ${String(p.firmwareType)}`);
      // Diff or raw, the package starts with its header: the hand-over takes the mode, split size,
      // diff_version or image size from it.
      if (p.packageLength < FIXED_HEADER_BYTES) throw new FlashPortError('set_boot: package shorter than a header');
      let fixed;
      try {
        fixed = parseFixedHeader(readBytes(ota, 0, FIXED_HEADER_BYTES));
      } catch (e) {
        throw new FlashPortError(`set_boot: not a usable package: ${(e as Error).message}`);
      }
      if (recordsOffset(fixed) > p.packageLength) throw new FlashPortError('set_boot: package shorter than its header');
      if ((fixed.mode === 'raw') !== (p.firmwareType === 'raw'))
        throw new FlashPortError(`set_boot: a ${p.firmwareType} update cannot hand over a ${fixed.mode} package`);
      if (p.firmwareType === 'diff') {
        if (p.splitSize !== undefined && p.splitSize !== fixed.splitSize) throw new FlashPortError(`set_boot: split size ${p.splitSize} != the package's ${fixed.splitSize}`);
        if (p.diffVersion !== undefined && p.diffVersion !== fixed.diffVersion) throw new FlashPortError(`set_boot: diff_version ${p.diffVersion} != the package's ${fixed.diffVersion}`);
      }
      const head = readBytes(ota, 0, fixed.headerLength);
      stageSetBoot(flash, layout, p.packageLength, p.packageSha256, head, { firmwareType: p.firmwareType, updateType, rollback });
    },

    async rollback() {
      live();
      if (booted === undefined) throw new FlashPortError('rollback: the device has not booted');
      confirmBoot(flash, layout, booted);
    },

    async powerOn() {
      live();
      const outcome = boot({ flash, layout, maxBootAttempts: opts.maxBootAttempts, trustedKeys: opts.trustedKeys, onProgress: opts.onRestoreProgress });
      booted = outcome.kind === 'halt' ? undefined : outcome.slot;
      return outcome;
    },

    async readImage(offset, length) {
      live();
      if (booted === undefined) throw new FlashPortError('readImage: the device has not booted');
      const slot = openPartition(flash, layout, booted === 'A' ? 'appA' : 'appB');
      checkInt(offset, 'readImage offset');
      checkInt(length, 'readImage length');
      if (offset + length > slot.geometry.size) throw new FlashPortError(`readImage [${offset}, +${length}) runs past slot ${booted}`);
      return readBytes(slot, offset, length);
    },

    async securityCounter() {
      live();
      return readHandover(openPartition(flash, layout, 'params'))?.securityCounter ?? 0;
    },

    async loadState() {
      live();
      if (!existsSync(statePath)) return null;
      return readFileSync(statePath, 'utf8');
    },

    async saveState(text) {
      live();
      // Atomic replace: a power cut leaves the old or the new state, never half of one.
      const tmp = `${statePath}.tmp`;
      writeFileSync(tmp, text);
      renameSync(tmp, statePath);
    },

    async close() {
      if (closed) return;
      closed = true;
      fd.close();
    },
  };
  return port;
}

export interface DeviceFlashOptions {
  /** The factory image, written to slot A. */
  image: Uint8Array;
  /** Its version, recorded in DIR/device.json. */
  version: string;
  /** Two application slots (A/B) instead of one (in place). */
  ab?: boolean;
  /** Bytes per slot (default: twice the image, at least 64 KiB, rounded to 64 KiB). */
  slotSize?: number;
  /** Bytes of the OTA partition (default: the slot size, so a full image fits). */
  otaSize?: number;
  /** Largest chunk of an in-place restore; the backup partition holds two (default 64 KiB). */
  splitSize?: number;
  sectorSize?: number;
  programUnit?: number;
  /** How the flash takes a second program of a unit (default 'error'; 'program-once': ECC flash). */
  overwrite?: OverwriteMode;
}

/** Creates a device flash directory holding `image` in slot A (refuses an existing one). */
export function createDeviceFlashDir(dir: string, o: DeviceFlashOptions): PartitionLayout {
  if (!isValidVersion(o.version)) throw new FlashPortError(`invalid version ${JSON.stringify(o.version)}`);
  if (o.image.length === 0) throw new FlashPortError('the factory image is empty');
  const unit = 64 * 1024;
  const slotSize = o.slotSize ?? roundUp(Math.max(o.image.length * 2, unit), unit);
  if (o.image.length > slotSize) throw new FlashPortError(`the image (${o.image.length} bytes) does not fit a ${slotSize}-byte slot`);
  const layout = defaultLayout({
    appSize: slotSize,
    otaSize: o.otaSize ?? slotSize,
    splitSize: o.splitSize ?? unit,
    sectorSize: o.sectorSize,
    programUnit: o.programUnit,
    ab: o.ab === true,
  });
  const fd = createFlashDir(dir, layout, o.overwrite === undefined ? {} : { overwrite: o.overwrite });
  try {
    const appA = openPartition(fd.flash, layout, 'appA');
    eraseRange(appA, 0, appA.geometry.size);
    appA.program(0, padToUnit(o.image, layout.flash));
  } finally {
    fd.close();
  }
  const state = emptyDeviceState();
  state.slots.A = { version: o.version, size: o.image.length };
  const tmp = join(dir, `${DEVICE_STATE_FILE}.tmp`);
  writeFileSync(tmp, serializeDeviceState(state));
  renameSync(tmp, join(dir, DEVICE_STATE_FILE));
  return layout;
}
