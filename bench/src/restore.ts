// Flash wear of one update: the boot-side restore run on a simulated NOR flash (4 KiB sectors), no
// power cut, counted by the restore's own power-cut harness (runPowercut with no cuts), which also
// checks that the device then boots exactly NEW.
import { readFileSync } from 'node:fs';
import { runPowercut, type PatchMode } from '@otadiff/patch-apply';

export const SECTOR_SIZE = 4096;

export interface RestoreRow {
  mode: PatchMode;
  /** Program + erase operations of the whole restore (journal, backup and image). */
  operations: number;
  erases: number;
  programs: number;
  bytesProgrammed: number;
  maxErasesPerSector: number;
  /** Sectors NEW occupies: what writing the full image would erase once each. */
  newSectors: number;
  ramBytes: number;
}

export function measureRestore(oldPath: string, pkgPath: string, newPath: string): RestoreRow {
  const old = new Uint8Array(readFileSync(oldPath));
  const neu = new Uint8Array(readFileSync(newPath));
  const pkg = new Uint8Array(readFileSync(pkgPath));
  const r = runPowercut(old, neu, pkg, { sectorSize: SECTOR_SIZE, sample: 0 });
  return {
    mode: r.mode,
    operations: r.operations,
    erases: r.wear.erases,
    programs: r.wear.programs,
    bytesProgrammed: r.wear.bytesProgrammed,
    maxErasesPerSector: r.wear.maxErasesPerSector,
    newSectors: Math.ceil(neu.length / SECTOR_SIZE),
    ramBytes: r.ramBytes,
  };
}
