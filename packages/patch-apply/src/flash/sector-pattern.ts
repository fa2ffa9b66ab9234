// Sector maps of unbounded length: what a part family looks like from offset 0 on (STM32F4: 4 x 16 KiB,
// 1 x 64 KiB, then 128 KiB sectors), so a layout can be sized to the images before the flash size is known.
import { FlashError, makeGeometry, type ErasedValue, type FlashGeometry, type SectorRun } from './flash.js';

export interface SectorPattern {
  /** The first sectors, in order. */
  readonly runs: readonly SectorRun[];
  /** Size of every sector after them. */
  readonly then: number;
}

export function uniformPattern(sectorSize: number): SectorPattern {
  return { runs: [], then: sectorSize };
}

function checkPattern(p: SectorPattern): void {
  for (const r of p.runs)
    if (!Number.isSafeInteger(r.count) || r.count < 0 || !Number.isSafeInteger(r.size) || r.size <= 0)
      throw new FlashError(`sector map: bad run ${JSON.stringify(r)}`);
  if (!Number.isSafeInteger(p.then) || p.then <= 0) throw new FlashError(`sector map: bad sector size ${p.then}`);
}

/** The first sector boundary of the pattern at or after `offset`. */
export function patternCeil(p: SectorPattern, offset: number): number {
  checkPattern(p);
  let base = 0;
  for (const r of p.runs) {
    const end = base + r.count * r.size;
    if (offset <= end) return base + Math.ceil((offset - base) / r.size) * r.size;
    base = end;
  }
  return base + Math.ceil((offset - base) / p.then) * p.then;
}

/** The boundary `count` sectors after the boundary `offset`. */
export function patternAdvance(p: SectorPattern, offset: number, count: number): number {
  let at = offset;
  for (let i = 0; i < count; i++) at = patternCeil(p, at + 1);
  return at;
}

/** The largest sector of the pattern. */
export function patternLargest(p: SectorPattern): number {
  return Math.max(p.then, ...p.runs.map((r) => r.size));
}

/** The geometry of the first `size` bytes of the pattern (`size` must be a boundary). */
export function patternGeometry(p: SectorPattern, size: number, programUnit: number, erasedValue: ErasedValue): FlashGeometry {
  checkPattern(p);
  if (patternCeil(p, size) !== size) throw new FlashError(`${size} bytes do not end on a sector boundary of the map`);
  const runs: SectorRun[] = [];
  let base = 0;
  for (const r of p.runs) {
    if (base >= size) break;
    const count = Math.min(r.count, (size - base) / r.size);
    runs.push({ count, size: r.size });
    base += count * r.size;
  }
  if (base < size) runs.push({ count: (size - base) / p.then, size: p.then });
  return makeGeometry({ size, sectors: runs, programUnit, erasedValue });
}
