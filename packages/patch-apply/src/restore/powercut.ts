// Power-cut simulation of the boot-side restore: cut at flash operation k, reboot, resume, and check
// that every boot starts either the old image untouched or the complete new one. The device is a named
// flash profile (flash/profiles.ts) or a custom geometry; the clean run's wear and modelled time come
// with the report.
import { describeSectors, PowerCutError, readBytes, sectorAt, sectorCeil, sectorLength, sectorStart, type ErasedValue, type OverwriteMode } from '../flash/flash.js';
import { FaultyFlash, type TearMode } from '../flash/faulty-flash.js';
import type { Slot } from '../flash/handover.js';
import { MemoryFlash } from '../flash/memory-flash.js';
import { defaultLayout, openPartition, type PartitionLayout } from '../flash/partition-layout.js';
import { flashProfile, type FlashProfile } from '../flash/profiles.js';
import { Prng } from '../flash/prng.js';
import { uniformPattern } from '../flash/sector-pattern.js';
import { WearMeter, type WearFigures } from '../flash/wear-meter.js';
import { parseHeader, type PackageHeader } from '../package-format.js';
import { boot, restoreRamBytes, type BootOutcome } from './boot-restore.js';
import { stageUpdate } from './stage.js';

export interface SimulatedDevice {
  layout: PartitionLayout;
  /** Flash contents right after the OTA service's set_boot: OLD in slot A, the package, the hand-over. */
  flash: MemoryFlash;
  header: PackageHeader;
  targetSlot: Slot;
  /** The profile the device follows, or null for a custom geometry. */
  profile: FlashProfile | null;
  overwrite: OverwriteMode;
}

/** A device: a named profile, or a custom geometry (uniform sectors, program unit, erased value, overwrite rule). */
export interface DeviceOptions {
  /** A profile name (see FLASH_PROFILES) or a profile; excludes the custom geometry fields. */
  profile?: string | FlashProfile;
  sectorSize?: number;
  programUnit?: number;
  erasedValue?: ErasedValue;
  /** Default 'error' for a custom geometry (the strict simulator); a profile brings its own. */
  overwrite?: OverwriteMode;
  otaSize?: number;
  /** Bytes of the backup ring (in place); default: defaultBackupBytes. */
  backupSize?: number;
  /**
   * Leave the backup partition as an earlier update would (not erased), so an update's wear counts the
   * ring erases a device in service pays. Default true; false starts from a factory-erased ring.
   */
  usedBackup?: boolean;
}

function resolveProfile(opts: DeviceOptions): FlashProfile | null {
  if (opts.profile === undefined) return null;
  if (opts.sectorSize !== undefined || opts.programUnit !== undefined || opts.erasedValue !== undefined || opts.overwrite !== undefined)
    throw new RangeError('a flash profile brings its own geometry: give a profile or a custom geometry, not both');
  return typeof opts.profile === 'string' ? flashProfile(opts.profile) : opts.profile;
}

/** Lays out a device the way the OTA service leaves it before the reboot into the bootloader. */
export function prepareDevice(old: Uint8Array, pkg: Uint8Array, opts: DeviceOptions = {}): SimulatedDevice {
  const header = parseHeader(pkg);
  const ab = header.mode !== 'inplace';
  const profile = resolveProfile(opts);
  const layout = defaultLayout({
    appSize: Math.max(old.length, header.newSize, 1),
    otaSize: Math.max(pkg.length, opts.otaSize ?? 1),
    splitSize: header.splitSize,
    sectors: profile?.sectors ?? uniformPattern(opts.sectorSize ?? 4096),
    programUnit: profile?.programUnit ?? opts.programUnit,
    erasedValue: profile?.erasedValue ?? opts.erasedValue,
    backupSize: opts.backupSize,
    ab,
  });
  const overwrite = profile?.overwrite ?? opts.overwrite ?? 'error';
  const flash = new MemoryFlash(layout.flash, { onOverwrite: overwrite });
  flash.raw.set(old, layout.appA.offset);
  // An earlier update's leftovers: bytes that are not erased (and are no record of this update).
  if (opts.usedBackup ?? true) flash.raw.fill(layout.flash.erasedValue ^ 0x5a, layout.backup.offset, layout.backup.offset + layout.backup.size);
  const targetSlot = stageUpdate(flash, layout, pkg).targetSlot;
  return { layout, flash, header, targetSlot, profile, overwrite };
}

export interface PowercutOptions extends DeviceOptions {
  /** Cut a seeded random sample of this many operations instead of every one. */
  sample?: number;
  seed?: number;
  /** Every n-th cut also cuts once more during the resume (double fault). Default 3; 0 disables. */
  doubleCutEvery?: number;
  tear?: TearMode;
  /** Count (and cut) reads too, not only programs and erases. */
  countReads?: boolean;
  onCut?: (done: number, total: number) => void;
}

export interface CutFailure {
  op: number;
  detail: string;
}

/** Flash wear of one clean update, and what it means per sector of NEW. */
export interface UpdateWear extends WearFigures {
  /** Sectors of the target slot that hold NEW's bytes. */
  newSectors: number;
  erasesPerNewSector: number;
  /** Sectors of NEW whose bytes already equal NEW in OLD at the same offset (in place), and their erases. */
  unchangedSectors: number;
  unchangedSectorErases: number;
  /** eraseMs + programMs (null without a profile's timings). */
  restoreMs: number | null;
}

export interface PowercutReport {
  mode: PackageHeader['mode'];
  /** The profile's name, or 'custom'. */
  flash: string;
  geometry: { sectors: string; programUnit: number; erasedValue: number; overwrite: OverwriteMode };
  /** Counted flash operations (program + erase) of a clean restore. */
  operations: number;
  cuts: number;
  doubleCuts: number;
  recovered: number;
  failed: number;
  failures: CutFailure[];
  /** Flash wear of a clean restore. */
  wear: UpdateWear;
  /** restoreRamBytes on the target slot: the restore's buffers (and in place its planning). */
  ramBytes: number;
}

const MAX_BOOTS = 16;

function slotBytes(flash: FaultyFlash | MemoryFlash, layout: PartitionLayout, slot: Slot, length: number): Uint8Array {
  return readBytes(openPartition(flash, layout, slot === 'A' ? 'appA' : 'appB'), 0, length);
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** Boots until the bootloader decides, rebooting after every power cut; checks what it decided. */
function runUntilBoot(dev: SimulatedDevice, faulty: FaultyFlash, neu: Uint8Array, old: Uint8Array, rng: Prng | null): string | null {
  for (let boots = 0; boots < MAX_BOOTS; boots++) {
    let outcome: BootOutcome;
    try {
      outcome = boot({ flash: faulty, layout: dev.layout });
    } catch (e) {
      if (!(e instanceof PowerCutError)) return `boot threw ${(e as Error).name}: ${(e as Error).message}`;
      faulty.reboot();
      // A second cut somewhere in the resume: power fails again while recovering.
      if (rng !== null && boots === 0) faulty.scheduleCut(rng.nextInt(64));
      continue;
    }
    faulty.disarm();
    if (outcome.kind !== 'trial') {
      const slotOld = outcome.kind === 'old' ? equal(slotBytes(faulty, dev.layout, outcome.slot, old.length), old) : false;
      return `boot ${outcome.kind}${'reason' in outcome ? ` (${outcome.reason}: ${outcome.detail})` : ''}${slotOld ? '' : ', and the slot is not the old image'}`;
    }
    if (outcome.slot !== dev.targetSlot) return `booted slot ${outcome.slot}, expected ${dev.targetSlot}`;
    if (!equal(slotBytes(faulty, dev.layout, outcome.slot, neu.length), neu)) return `slot ${outcome.slot} booted with an image that is not NEW`;
    return null;
  }
  return `no boot decision after ${MAX_BOOTS} power cycles`;
}

/** A fresh copy of the staged device's flash. */
function copyOf(dev: SimulatedDevice): MemoryFlash {
  return new MemoryFlash(dev.flash.geometry, { contents: dev.flash.snapshot(), onOverwrite: dev.overwrite });
}

/** Wear of the clean run, per sector of NEW in the target slot. */
function updateWear(dev: SimulatedDevice, meter: WearMeter, old: Uint8Array, neu: Uint8Array): UpdateWear {
  const f = meter.figures();
  const slot = dev.targetSlot === 'A' ? dev.layout.appA : dev.layout.appB!;
  const g = dev.layout.flash;
  const first = sectorAt(g, slot.offset);
  const end = neu.length === 0 ? first : sectorAt(g, sectorCeil(g, slot.offset + neu.length) - 1) + 1;
  let unchanged = 0;
  let unchangedErases = 0;
  if (dev.header.mode === 'inplace') {
    for (let s = first; s < end; s++) {
      const lo = sectorStart(g, s) - slot.offset;
      const hi = Math.min(lo + sectorLength(g, s), neu.length);
      if (hi > old.length || Buffer.compare(old.subarray(lo, hi), neu.subarray(lo, hi)) !== 0) continue;
      unchanged++;
      unchangedErases += meter.erases[s];
    }
  }
  const newSectors = end - first;
  return {
    ...f,
    newSectors,
    erasesPerNewSector: newSectors === 0 ? 0 : f.erases / newSectors,
    unchangedSectors: unchanged,
    unchangedSectorErases: unchangedErases,
    restoreMs: f.eraseMs === null || f.programMs === null ? null : f.eraseMs + f.programMs,
  };
}

export function runPowercut(old: Uint8Array, neu: Uint8Array, pkg: Uint8Array, opts: PowercutOptions = {}): PowercutReport {
  const dev = prepareDevice(old, pkg, opts);
  const tear = opts.tear ?? 'random';
  const countReads = opts.countReads ?? false;
  const meter = new WearMeter(copyOf(dev), dev.profile?.timing ?? null);
  const clean = new FaultyFlash(meter, { cutAt: 'never', countReads });
  const cleanFailure = runUntilBoot(dev, clean, neu, old, null);
  if (cleanFailure !== null) throw new Error(`the restore fails without any power cut: ${cleanFailure}`);
  const operations = clean.ops;

  const rng = new Prng(opts.seed ?? 1);
  let cutOps: number[] = Array.from({ length: operations }, (_, k) => k);
  if (opts.sample !== undefined && opts.sample < operations) {
    for (let i = cutOps.length - 1; i > 0; i--) {
      const j = rng.nextInt(i + 1);
      [cutOps[i], cutOps[j]] = [cutOps[j], cutOps[i]];
    }
    cutOps = cutOps.slice(0, opts.sample).sort((a, b) => a - b);
  }
  const doubleEvery = opts.doubleCutEvery ?? 3;
  const failures: CutFailure[] = [];
  let doubleCuts = 0;
  cutOps.forEach((k, n) => {
    const faulty = new FaultyFlash(copyOf(dev), { cutAt: k, tear, countReads, seed: (opts.seed ?? 1) * 1_000_003 + k });
    const double = doubleEvery > 0 && n % doubleEvery === doubleEvery - 1;
    if (double) doubleCuts++;
    const failure = runUntilBoot(dev, faulty, neu, old, double ? rng : null);
    if (failure !== null) failures.push({ op: k, detail: failure });
    opts.onCut?.(n + 1, cutOps.length);
  });

  const g = dev.layout.flash;
  return {
    mode: dev.header.mode,
    flash: dev.profile?.name ?? 'custom',
    geometry: { sectors: describeSectors(g), programUnit: g.programUnit, erasedValue: g.erasedValue, overwrite: dev.overwrite },
    operations,
    cuts: cutOps.length,
    doubleCuts,
    recovered: cutOps.length - failures.length,
    failed: failures.length,
    failures,
    wear: updateWear(dev, meter, old, neu),
    ramBytes: restoreRamBytes(dev.header, openPartition(dev.flash, dev.layout, dev.targetSlot === 'A' ? 'appA' : 'appB').geometry),
  };
}
