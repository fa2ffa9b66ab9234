// Restores whose source stays intact while the target is written: an A/B diff (decoded from the other
// slot) and OTA_RAW (the package's records are the image). Write group by write group: a sector whose
// bytes already equal NEW is neither erased nor written; a group of several chunks (sectors larger than
// a chunk, or straddling chunk boundaries) is erased once and its chunks programmed in turn, and redone
// from its erase after a power cut. Any chunk can be decoded again at any time, so no backup is needed.
import type { PackageHeader } from '../package-format.js';
import { PackageError } from '../package-error.js';
import type { SourceReader } from '../source-reader.js';
import { sectorLength, sectorStart, type Flash, type FlashGeometry } from '../flash/flash.js';
import type { JournalEntry, RestoreStateName } from '../flash/journal.js';
import type { ChunkReader } from './chunk-reader.js';
import type { FlashIo } from './flash-io.js';
import { RestoreFailure } from './restore-failure.js';
import { groupOf, writeGroups, type WriteGroup } from './write-groups.js';

export interface CopyContext {
  readonly p: PackageHeader;
  readonly chunks: ChunkReader;
  /** Where a chunk's source bytes come from (the old slot; unused for raw packages). */
  readonly source: SourceReader;
  readonly target: Flash;
  readonly io: FlashIo;
  log(state: RestoreStateName, chunk: number, aux: number): void;
  progress(chunk: number): void;
}

export function restoreByCopy(c: CopyContext, entry: JournalEntry): void {
  const { p, target, io } = c;
  const slot: FlashGeometry = target.geometry;
  const groups = writeGroups(slot, p.splitSize, p.newSize);
  const n = p.chunks.length;
  let first = 0;
  if (entry.state === 'chunk-done') {
    if (entry.chunk >= n) throw new RestoreFailure('backup', `the journal names chunk ${entry.chunk} of ${n}`);
    const grp = groupOf(groups, entry.chunk);
    // A group of several chunks is redone from its erase unless it was finished.
    first = entry.chunk === grp.lastChunk ? grp.index + 1 : grp.index;
  } else if (entry.state !== 'verified') {
    throw new RestoreFailure('backup', `the journal state '${entry.state}' is not one of a copying restore`);
  }
  const decode = (k: number): Uint8Array => {
    try {
      return c.chunks.decode(k, c.source).data;
    } catch (e) {
      // The source is intact by construction: a record that fails is the package's fault.
      if (e instanceof PackageError) throw new RestoreFailure('badPackage', e.message);
      throw e;
    }
  };
  const span = (s: number): [number, number] => {
    const lo = sectorStart(slot, s);
    return [lo, Math.min(lo + sectorLength(slot, s), p.newSize)];
  };
  for (let g = first; g < groups.length; g++) {
    const grp: WriteGroup = groups[g];
    if (grp.firstChunk === grp.lastChunk) {
      const a = grp.firstChunk;
      const data = decode(a);
      const base = a * p.splitSize;
      for (let s = grp.firstSector; s <= grp.lastSector; s++) {
        const [lo, hi] = span(s);
        const bytes = data.subarray(lo - base, hi - base);
        if (io.equals(target, lo, bytes)) continue;
        writeVerified(lo, () => {
          target.erase(s);
          io.program(target, lo, bytes);
          return io.equals(target, lo, bytes);
        });
      }
      c.log('chunk-done', a, p.chunks[a].crc32);
      c.progress(a);
      continue;
    }
    let same = true;
    for (let k = grp.firstChunk; k <= grp.lastChunk && same; k++) same = io.equals(target, k * p.splitSize, decode(k));
    if (!same) {
      writeVerified(grp.start, () => {
        io.eraseSectors(target, grp.firstSector, grp.lastSector);
        for (let k = grp.firstChunk; k <= grp.lastChunk; k++) {
          const data = decode(k);
          io.program(target, k * p.splitSize, data);
          if (!io.equals(target, k * p.splitSize, data)) return false;
          if (k < grp.lastChunk) c.log('chunk-done', k, p.chunks[k].crc32);
        }
        return true;
      });
    }
    c.log('chunk-done', grp.lastChunk, p.chunks[grp.lastChunk].crc32);
    for (let k = grp.firstChunk; k <= grp.lastChunk; k++) c.progress(k);
  }
}

/** Runs `attempt` (erase, program, read back) and once more if it does not read back, then gives up. */
function writeVerified(at: number, attempt: () => boolean): void {
  if (attempt() || attempt()) return;
  throw new RestoreFailure('backup', `flash at ${at} does not read back what was written`);
}
