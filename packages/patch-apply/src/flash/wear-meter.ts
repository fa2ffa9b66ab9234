// Counts what a run costs the flash: erases per sector, programs, bytes programmed, and the typical time
// those operations take on a profile (flash/profiles.ts). Reads are free in the model: NOR reads are
// memory-speed next to erases and programs, and the decoder's CPU time is not modelled.
import { sectorCount, sectorLength, type Flash, type FlashGeometry, type OverwriteMode } from './flash.js';
import { programMs, type FlashTiming } from './profiles.js';

export interface WearFigures {
  erases: number;
  programs: number;
  bytesProgrammed: number;
  /** The most erases any one sector took, and which sector (-1 when nothing was erased). */
  maxErasesPerSector: number;
  busiestSector: number;
  /** Erase counts of the sectors that were erased, by sector index. */
  erasesBySector: Record<string, number>;
  /** Modelled typical time of the erases and programs (ms), or null without a timing model. */
  eraseMs: number | null;
  programMs: number | null;
}

export class WearMeter implements Flash {
  readonly geometry: FlashGeometry;
  readonly onOverwrite: OverwriteMode | undefined;
  readonly erases: Uint32Array;
  programs = 0;
  bytesProgrammed = 0;
  private eraseTime = 0;
  private programTime = 0;

  constructor(
    readonly inner: Flash,
    private readonly timing: FlashTiming | null = null,
  ) {
    this.geometry = inner.geometry;
    this.onOverwrite = inner.onOverwrite;
    this.erases = new Uint32Array(sectorCount(inner.geometry));
  }

  read(offset: number, dst: Uint8Array, dstOffset?: number, length?: number): void {
    this.inner.read(offset, dst, dstOffset, length);
  }

  program(offset: number, data: Uint8Array): void {
    this.inner.program(offset, data);
    this.programs++;
    this.bytesProgrammed += data.length;
    if (this.timing !== null) this.programTime += programMs(this.timing, data.length);
  }

  erase(sector: number): void {
    this.inner.erase(sector);
    this.erases[sector]++;
    if (this.timing !== null) this.eraseTime += this.timing.eraseMs(sectorLength(this.geometry, sector));
  }

  figures(): WearFigures {
    const erasesBySector: Record<string, number> = {};
    let total = 0;
    let max = 0;
    let busiest = -1;
    this.erases.forEach((n, s) => {
      if (n === 0) return;
      erasesBySector[String(s)] = n;
      total += n;
      if (n > max) {
        max = n;
        busiest = s;
      }
    });
    return {
      erases: total,
      programs: this.programs,
      bytesProgrammed: this.bytesProgrammed,
      maxErasesPerSector: max,
      busiestSector: busiest,
      erasesBySector,
      eraseMs: this.timing === null ? null : this.eraseTime,
      programMs: this.timing === null ? null : this.programTime,
    };
  }
}
