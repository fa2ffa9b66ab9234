// Write groups: the smallest runs of a slot that start and end on both a sector boundary and a chunk
// boundary (or run to the end of NEW). A restore rewrites a slot group by group: a group's sectors hold
// bytes of its chunks only, so erasing them touches no other chunk. With sectors no larger than a chunk
// and aligned to it a group is one chunk over one or more sectors; a 128 KiB sector holding two 64 KiB
// chunks, or sectors straddling chunk boundaries, make a group of several chunks.
import { sectorAt, sectorCeil, type FlashGeometry } from '../flash/flash.js';

export interface WriteGroup {
  readonly index: number;
  readonly firstChunk: number;
  readonly lastChunk: number;
  /** Slot bytes [start, end): sector boundaries; `end` may pass NEW's end in the last group. */
  readonly start: number;
  readonly end: number;
  /** Slot sector indices [firstSector, lastSector]. */
  readonly firstSector: number;
  readonly lastSector: number;
}

/** The groups covering NEW's `newSize` bytes in chunks of `splitSize` on a slot of geometry `slot`. */
export function writeGroups(slot: FlashGeometry, splitSize: number, newSize: number): WriteGroup[] {
  const groups: WriteGroup[] = [];
  let start = 0;
  while (start < newSize) {
    let end = sectorCeil(slot, Math.min(start + splitSize, newSize));
    while (end < newSize && end % splitSize !== 0) end = sectorCeil(slot, Math.min(Math.ceil(end / splitSize) * splitSize, newSize));
    groups.push({
      index: groups.length,
      firstChunk: start / splitSize,
      lastChunk: Math.ceil(Math.min(end, newSize) / splitSize) - 1,
      start,
      end,
      firstSector: sectorAt(slot, start),
      lastSector: sectorAt(slot, end - 1),
    });
    start = end;
  }
  return groups;
}

/** The group holding chunk `chunk`. */
export function groupOf(groups: readonly WriteGroup[], chunk: number): WriteGroup {
  let lo = 0;
  let hi = groups.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (groups[mid].firstChunk <= chunk) lo = mid;
    else hi = mid - 1;
  }
  return groups[lo];
}
