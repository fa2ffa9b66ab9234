// Power-cut simulation of the boot-side restore: cut at flash operation k, reboot, resume, and check
// that every boot starts either the old image untouched or the complete new one.
import { PowerCutError, readBytes } from '../flash/flash.js';
import { FaultyFlash, type TearMode } from '../flash/faulty-flash.js';
import type { Slot } from '../flash/handover.js';
import { MemoryFlash } from '../flash/memory-flash.js';
import { defaultLayout, openPartition, type PartitionLayout } from '../flash/partition-layout.js';
import { Prng } from '../flash/prng.js';
import { parseHeader, type PackageHeader } from '../package-format.js';
import { boot, restoreRamBytes, type BootOutcome } from './boot-restore.js';
import { stageUpdate } from './stage.js';

export interface SimulatedDevice {
  layout: PartitionLayout;
  /** Flash contents right after the OTA service's set_boot: OLD in slot A, the package, the hand-over. */
  flash: MemoryFlash;
  header: PackageHeader;
  targetSlot: Slot;
}

/** Lays out a device the way the OTA service leaves it before the reboot into the bootloader. */
export function prepareDevice(
  old: Uint8Array,
  pkg: Uint8Array,
  opts: { sectorSize?: number; programUnit?: number; otaSize?: number } = {},
): SimulatedDevice {
  const header = parseHeader(pkg);
  const ab = header.mode !== 'inplace';
  const layout = defaultLayout({
    appSize: Math.max(old.length, header.newSize, 1),
    otaSize: Math.max(pkg.length, opts.otaSize ?? 1),
    splitSize: header.splitSize,
    sectorSize: opts.sectorSize,
    programUnit: opts.programUnit,
    ab,
  });
  const flash = new MemoryFlash({ size: layout.flash.size, sectorSize: layout.flash.sectorSize, programUnit: layout.flash.programUnit });
  flash.raw.set(old, layout.appA.offset);
  const targetSlot = stageUpdate(flash, layout, pkg).targetSlot;
  return { layout, flash, header, targetSlot };
}

export interface PowercutOptions {
  sectorSize?: number;
  programUnit?: number;
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

export interface PowercutReport {
  mode: PackageHeader['mode'];
  /** Counted flash operations (program + erase) of a clean restore. */
  operations: number;
  cuts: number;
  doubleCuts: number;
  recovered: number;
  failed: number;
  failures: CutFailure[];
  /** Flash wear of a clean restore. */
  wear: { erases: number; programs: number; bytesProgrammed: number; maxErasesPerSector: number; erasesBySector: Record<string, number> };
  /** restoreRamBytes: the restore's buffers. */
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

export function runPowercut(old: Uint8Array, neu: Uint8Array, pkg: Uint8Array, opts: PowercutOptions = {}): PowercutReport {
  const dev = prepareDevice(old, pkg, opts);
  const tear = opts.tear ?? 'random';
  const countReads = opts.countReads ?? false;
  const clean = new FaultyFlash(new MemoryFlash(dev.flash.geometry, { contents: dev.flash.snapshot() }), { cutAt: 'never', countReads });
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
    const mem = new MemoryFlash(dev.flash.geometry, { contents: dev.flash.snapshot() });
    const faulty = new FaultyFlash(mem, { cutAt: k, tear, countReads, seed: (opts.seed ?? 1) * 1_000_003 + k });
    const double = doubleEvery > 0 && n % doubleEvery === doubleEvery - 1;
    if (double) doubleCuts++;
    const failure = runUntilBoot(dev, faulty, neu, old, double ? rng : null);
    if (failure !== null) failures.push({ op: k, detail: failure });
    opts.onCut?.(n + 1, cutOps.length);
  });

  const erasesBySector: Record<string, number> = {};
  let maxErases = 0;
  clean.erases.forEach((count, sector) => {
    if (count === 0) return;
    erasesBySector[String(sector)] = count;
    maxErases = Math.max(maxErases, count);
  });
  return {
    mode: dev.header.mode,
    operations,
    cuts: cutOps.length,
    doubleCuts,
    recovered: cutOps.length - failures.length,
    failed: failures.length,
    failures,
    wear: { erases: clean.totalErases, programs: clean.programs, bytesProgrammed: clean.bytesProgrammed, maxErasesPerSector: maxErases, erasesBySector },
    ramBytes: restoreRamBytes(dev.header),
  };
}
