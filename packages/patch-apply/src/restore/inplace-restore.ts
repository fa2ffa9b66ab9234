// The in-place restore: NEW is written over OLD in the slot it runs from, write group by write group
// (write-groups.ts), on any sector map and program unit, without ever programming a unit twice.
//
// Per group (chunks a..b), two phases, each journalled:
//   save   Decode the group's chunks and every chunk decoded later that reads the group's old bytes
//          (the next group's first chunk: its look-back), noting which old bytes each reads
//          (group-reads.ts). Sectors whose bytes already equal NEW are left alone; if none differs the
//          group is done ('chunk-done b'). Otherwise save in the backup ring (backup-ring.ts) every old
//          byte of a sector to be rewritten that a later step will still read, and last the group's
//          mark (below); then 'saved a'. Nothing of the group has been erased yet.
//   write  One-chunk group: the chunk is in RAM; rewrite its changed sectors one by one in the planned
//          order (erase, program, read back), then 'chunk-done a'. The group's mark in the ring holds the
//          CRC of each sector's old bytes: a resume finds the step under way as the last sector that no
//          longer matches it.
//          Several chunks: erase the group's sectors, then decode and program the chunks in turn
//          ('chunk-done k' each); a resume redoes the group from its erase.
// Two neighbouring one-chunk groups may go in the other order (the second first) when the first chunk
// reads fewer old bytes of the second region than the second chunk reads of the first (its look-back):
// the window of docs/FORMAT.md allows it, as chunk a+1 needs NEW only below a*S.
// Every decode reads old bytes from the ring where it holds them and from the slot otherwise, and new
// bytes of earlier groups from the slot: chunk k reads NEW below (k-1)*S and OLD above. Where the restore
// stands is read from the flash, the journal only bounding it from below: a group whose regions hold
// their chunk CRCs is done, one whose mark is in the ring is in its write phase, any other in its save
// phase (its sectors untouched). So a journal that lost records, even all of them, costs nothing; a
// chunk that no longer decodes to its CRC halts rather than writes anything wrong.
import { chunkLength, windowBoundary, type PackageHeader } from '../package-format.js';
import { PackageError } from '../package-error.js';
import type { SourceReader } from '../source-reader.js';
import { sectorCount, sectorLength, sectorStart, smallestSector, type Flash, type FlashGeometry } from '../flash/flash.js';
import type { JournalEntry, RestoreStateName } from '../flash/journal.js';
import { BackupRing, RING_HEADER, RingFullError, RingReadBackError, recordBytes, type RingRecord } from './backup-ring.js';
import { ChunkReader, zeroSource, type ReadTap } from './chunk-reader.js';
import type { Dependence } from '../transform/block.js';
import { FlashIo, IO_BLOCK } from './flash-io.js';
import { BlockSet, GroupReads, SAVE_BLOCK, type SaveRun } from './group-reads.js';
import { MAX_PLAN_BYTES, planRamBytesOf } from './plan-ram.js';
import { RestoreFailure } from './restore-failure.js';
import { groupOf, writeGroups, type WriteGroup } from './write-groups.js';

export interface InPlaceContext {
  readonly p: PackageHeader;
  readonly chunks: ChunkReader;
  /** The slot being rewritten. */
  readonly target: Flash;
  readonly ring: BackupRing;
  readonly io: FlashIo;
  log(state: RestoreStateName, chunk: number, aux: number): void;
  progress(chunk: number): void;
}

/** Groups of the slot for this package (the slot geometry decides them). */
export function inPlaceGroups(p: PackageHeader, slot: FlashGeometry): WriteGroup[] {
  return writeGroups(slot, p.splitSize, p.newSize);
}

/** The restore's order: which one-chunk groups go after their successor (pairs written second-first). */
export interface InPlacePlan {
  readonly groups: readonly WriteGroup[];
  /** secondFirst[g]: groups g and g+1 are written g+1 first. */
  readonly secondFirst: readonly boolean[];
  /** The most bytes the planner's read maps and sets held at once (planRamBytes bounds it). */
  readonly readBytes: number;
}

/**
 * Plans an in-place restore and checks, before the first erase, that this flash can carry it out: every
 * slot sector a whole number of save blocks, and a ring large enough for the old bytes the groups in
 * flight may have to keep at once in the worst case (every sector changed). Decodes every chunk against a
 * source of zeros (which bytes a chunk reads does not depend on their values), then picks the pairs that
 * go second-first to save the fewest bytes (dynamic programming over the groups: a pair costs the bytes
 * the first chunk reads of the second region plus the second group's look-back, a group on its own its
 * look-back). Deterministic, so every boot of a restore plans the same. Throws RestoreFailure ('layout')
 * naming the geometry, before any read map is allocated when planning would need more than MAX_PLAN_BYTES.
 */
export function planInPlace(p: PackageHeader, chunks: ChunkReader, slot: FlashGeometry, ring: FlashGeometry, describe: string): InPlacePlan {
  for (const r of slot.sectors)
    if (r.size % SAVE_BLOCK !== 0) throw new RestoreFailure('layout', `in-place restore needs sectors in multiples of ${SAVE_BLOCK} bytes; this flash has ${r.size}-byte sectors (${describe})`);
  const groups = inPlaceGroups(p, slot);
  const planBytes = planRamBytesOf(groups, slot);
  if (planBytes > MAX_PLAN_BYTES) {
    const big = groups.reduce((a, g) => (g.end - g.start > a.end - a.start ? g : a));
    throw new RestoreFailure(
      'layout',
      `planning this package in place needs ${planBytes} bytes of RAM (a ${big.end - big.start}-byte write group of ${big.lastSector - big.firstSector + 1} sectors), more than the limit of ${MAX_PLAN_BYTES} (${describe})`,
    );
  }
  for (const g of groups) {
    if (markBytes(g, ring) > smallestSector(ring))
      throw new RestoreFailure('layout', `the backup ring's ${smallestSector(ring)}-byte sectors cannot hold the mark of a ${g.lastSector - g.firstSector + 1}-sector write group (${describe})`);
  }
  const G = groups.length;
  // Ring bytes per group: of its own saves and mark; of its old bytes the next group's first chunk
  // reads (look-back); of those the previous group's first chunk reads (when the pair goes second-first).
  const own = new Array<number>(G).fill(0);
  const lookback = new Array<number>(G).fill(0);
  const forward = new Array<number>(G).fill(0);
  let reads: GroupReads | null = null;
  let readBytes = 0;
  const finish = (r: GroupReads) => (own[r.group.index] = recordBytesOf(r.saveRuns(() => true), ring) + markBytes(r.group, ring));
  for (let k = 0; k < p.chunks.length; k++) {
    const grp = groupOf(groups, k);
    if (reads === null || reads.group !== grp) {
      if (reads !== null) finish(reads);
      reads = new GroupReads(slot, grp);
    }
    // Only a group's first chunk reads its neighbours' old bytes: their sets live for its decode only.
    const first = k === grp.firstChunk;
    const prev = first && grp.index > 0 ? new BlockSet(groups[grp.index - 1]) : null;
    const next = first && grp.index + 1 < G ? new BlockSet(groups[grp.index + 1]) : null;
    const single = grp.firstChunk === grp.lastChunk;
    const B = windowBoundary(p, k);
    const target = reads;
    const tap = (src: number, len: number, out: number | null, dep: Dependence | null) => {
      const lo = Math.max(src, B);
      if (lo >= src + len) return;
      const n = src + len - lo;
      if (single) target.ownRead(lo, n, out === null ? null : k * p.splitSize + out + (lo - src), dep);
      else target.oldRead(lo, n, dep);
      prev?.read(lo, n, dep);
      next?.read(lo, n, dep);
    };
    decodeTolerant(chunks, k, zeroSource, false, tap);
    readBytes = Math.max(readBytes, reads.bytes + (prev?.bytes ?? 0) + (next?.bytes ?? 0));
    if (prev !== null) lookback[grp.index - 1] = recordBytesOf(prev.runs(grp.firstChunk), ring);
    if (next !== null) forward[grp.index + 1] = recordBytesOf(next.runs(grp.firstChunk), ring);
  }
  if (reads !== null) finish(reads);
  const single = (x: number) => groups[x].firstChunk === groups[x].lastChunk;
  // best[g]: bytes saved for others' reads from group g on; a pair only when it saves strictly less.
  const best = new Array<number>(G + 2).fill(0);
  const pair = new Array<boolean>(G).fill(false);
  for (let g = G - 1; g >= 0; g--) {
    best[g] = lookback[g] + best[g + 1];
    if (g + 1 < G && single(g) && single(g + 1)) {
      const swapped = forward[g + 1] + lookback[g + 1] + best[g + 2];
      if (swapped < best[g]) {
        best[g] = swapped;
        pair[g] = true;
      }
    }
  }
  const secondFirst = new Array<boolean>(G).fill(false);
  // Replay the order. Live while a group is under way: the look-back records of the group written
  // before (kept until this group's first chunk is done), and what this group and its partner save.
  const usable = sectorCount(ring) - 2; // one sector being filled beyond the estimate, one lost to a cut
  const check = (g: number, live: number[]) => {
    const need = live.reduce((n, bytes) => n + sectorsFor(bytes, ring), 0);
    if (need > usable)
      throw new RestoreFailure(
        'layout',
        `the backup ring (${sectorCount(ring)} sectors, ${ring.size} bytes) is too small to restore this package in place: the group at chunk ${groups[g].firstChunk} may need ${need + 2} sectors (${describe})`,
      );
  };
  let carry = 0;
  for (let g = 0; g < G; ) {
    if (pair[g]) {
      secondFirst[g] = true;
      check(g + 1, [carry, own[g + 1], forward[g + 1], lookback[g + 1]]);
      check(g, [carry, forward[g + 1], lookback[g + 1], own[g]]);
      carry = lookback[g + 1];
      g += 2;
    } else {
      check(g, [carry, own[g], lookback[g]]);
      carry = lookback[g];
      g += 1;
    }
  }
  return { groups, secondFirst, readBytes };
}

/** Ring bytes of a group's mark (a CRC per sector of a one-chunk group, one for a group of several chunks). */
function markBytes(g: WriteGroup, ring: FlashGeometry): number {
  return recordBytes(4 * (g.firstChunk === g.lastChunk ? g.lastSector - g.firstSector + 1 : 1), ring.programUnit);
}

/** Ring bytes the records of `runs` take (a header and padding each, one more header per sector a long run crosses). */
function recordBytesOf(runs: readonly SaveRun[], ring: FlashGeometry): number {
  const room = smallestSector(ring) - RING_HEADER;
  let n = 0;
  for (const r of runs) n += recordBytes(r.length, ring.programUnit) + Math.floor(r.length / room) * recordBytes(SAVE_BLOCK, ring.programUnit);
  return n;
}

/** Ring sectors records of `bytes` may fill: records do not cross sectors, so one partly filled sector more. */
function sectorsFor(bytes: number, ring: FlashGeometry): number {
  return bytes === 0 ? 0 : Math.ceil(bytes / (smallestSector(ring) - recordBytes(SAVE_BLOCK, ring.programUnit))) + 1;
}

/** A decode for read positions only: a bad record still fails, a CRC mismatch does not. */
function decodeTolerant(chunks: ChunkReader, k: number, source: SourceReader, destroyed: boolean, tap: ReadTap | null = null) {
  try {
    return chunks.decode(k, source, true, tap);
  } catch (e) {
    if (e instanceof PackageError) throw new RestoreFailure(destroyed ? 'newImage' : 'badPackage', e.message);
    throw e;
  }
}

export class InPlaceRestore {
  private readonly groups: WriteGroup[];
  private readonly slot: FlashGeometry;
  private readonly n: number;
  /** Groups known to hold NEW (probed, or written in this boot). */
  private readonly done: boolean[];

  constructor(
    private readonly c: InPlaceContext,
    private readonly plan: InPlacePlan,
    /** The slot may no longer hold OLD (a journal record past 'verified', or a resume found by the ring). */
    private destroyed: boolean,
  ) {
    this.slot = c.target.geometry;
    this.groups = [...plan.groups];
    this.n = c.p.chunks.length;
    this.done = this.groups.map(() => false);
  }

  run(entry: JournalEntry): void {
    const groups = this.groups;
    let g = this.lowerBound(entry);
    for (let k = 0; k < g; k++) this.done[k] = true;
    for (;;) {
      while (g < groups.length && this.holdsNew(groups[g])) g++;
      if (g >= groups.length) return;
      const grp = groups[g];
      const next = g + 1 < groups.length && !this.holdsNew(groups[g + 1]) ? groups[g + 1] : null;
      if (next !== null && this.plan.secondFirst[g]) {
        const after = g + 2 < groups.length && !this.holdsNew(groups[g + 2]) ? [next.lastChunk + 1] : [];
        this.restoreGroup(next, [grp.firstChunk, ...after]);
        // Chunk a+1 is written: nothing decoded later reads region a's old bytes.
        this.restoreGroup(grp, []);
        g += 2;
      } else {
        this.restoreGroup(grp, next !== null ? [grp.lastChunk + 1] : []);
        g += 1;
      }
    }
  }

  // ---- where to start ---------------------------------------------------------------------------

  /**
   * The first group that may be unfinished: the journal's, or the one before it (which a pair going
   * second-first leaves behind). Where a group stands is read from the flash: done if its regions hold
   * their chunk CRCs, its saves complete if the ring holds its mark.
   */
  private lowerBound(e: JournalEntry): number {
    if (e.state === 'verified') return 0;
    if (e.chunk >= this.n) throw new RestoreFailure('backup', `the journal names chunk ${e.chunk} of ${this.n}`);
    const grp = groupOf(this.groups, e.chunk);
    if (e.state === 'saved' && grp.firstChunk !== e.chunk) throw new RestoreFailure('backup', `the journal names chunk ${e.chunk}, which starts no write group`);
    if (e.state !== 'saved' && e.state !== 'chunk-done') throw new RestoreFailure('backup', `the journal state '${e.state}' is not one of an in-place restore`);
    return Math.max(0, grp.index - 1);
  }

  /** Steps of a group's sector plan (one step for a group of several chunks). */
  private steps(grp: WriteGroup): number {
    return grp.firstChunk === grp.lastChunk ? grp.lastSector - grp.firstSector + 1 : 1;
  }

  /** Restores one unfinished group: from its save phase, or, when the ring holds its mark, its write phase. */
  private restoreGroup(grp: WriteGroup, readers: readonly number[]): void {
    const mark = this.c.ring.markOf(grp.start, this.steps(grp));
    if (mark === null) return this.saveAndWrite(grp, readers);
    this.destroyed = true;
    if (grp.firstChunk === grp.lastChunk) this.resumeOneChunk(grp, mark);
    else this.writeChunks(grp);
  }

  /** Every chunk of the group is on flash (written, or never different). */
  private holdsNew(grp: WriteGroup): boolean {
    if (this.done[grp.index]) return true;
    const p = this.c.p;
    for (let k = grp.firstChunk; k <= grp.lastChunk; k++) {
      if (this.c.io.crcOf(this.c.target, k * p.splitSize, chunkLength(p, k)) !== p.chunks[k].crc32) return false;
    }
    this.done[grp.index] = true;
    return true;
  }

  private chunkDone(k: number): boolean {
    return k < this.n && this.done[groupOf(this.groups, k).index];
  }

  // ---- sources ------------------------------------------------------------------------------------

  /** What chunk k reads: NEW below its window boundary from the slot, OLD above from the ring or the slot. */
  private sourceFor(k: number): SourceReader {
    const B = windowBoundary(this.c.p, k);
    const { target, ring } = this.c;
    return {
      read(offset, dst, dstOffset, length) {
        let at = offset;
        const end = offset + length;
        if (at < B) {
          const n = Math.min(end, B) - at;
          target.read(at, dst, dstOffset, n);
          at += n;
        }
        while (at < end) {
          const rec = ring.find(at);
          if (rec !== null) {
            const n = Math.min(end, rec.slotOffset + rec.length) - at;
            ring.read(rec, at, dst, dstOffset + (at - offset), n);
            at += n;
          } else {
            // Up to where the next record starts.
            const n = Math.min(end, ring.nextStart(at)) - at;
            target.read(at, dst, dstOffset + (at - offset), n);
            at += n;
          }
        }
      },
    };
  }

  /**
   * Decodes chunk k through the ring overlay; `tap` sees its old-byte reads (src, length, output slot
   * offset when known). A CRC mismatch is tolerated only with `tolerateCrc` (read positions wanted, or
   * outputs known to be partly stale).
   */
  private decode(k: number, tap: ReadTap | null, tolerateCrc: boolean) {
    const p = this.c.p;
    const B = windowBoundary(p, k);
    const t: ReadTap | null =
      tap === null
        ? null
        : (src, len, out, dep) => {
            const lo = Math.max(src, B);
            if (lo >= src + len) return;
            tap(lo, src + len - lo, out === null ? null : k * p.splitSize + out + (lo - src), dep);
          };
    try {
      return this.c.chunks.decode(k, this.sourceFor(k), tolerateCrc, t);
    } catch (e) {
      if (e instanceof PackageError) {
        // The package was verified before anything was destroyed: its records are sound, so a CRC
        // failure here means the old bytes this chunk reads are gone (the journal lost its place).
        if (e.code === 'chunk-crc') throw new RestoreFailure('backup', `chunk ${k} no longer decodes from the slot and the backup ring: ${e.message}`);
        throw new RestoreFailure(this.destroyed ? 'newImage' : 'badPackage', e.message);
      }
      throw e;
    }
  }

  // ---- save phase ---------------------------------------------------------------------------------

  /**
   * Both phases of a group; `readers` are the chunks of other groups decoded after it that read its old
   * bytes, in the order they will be written.
   */
  private saveAndWrite(grp: WriteGroup, readers: readonly number[]): void {
    const saved = this.save(grp, readers);
    if (saved === 'unchanged') {
      this.c.log('chunk-done', grp.lastChunk, this.c.p.chunks[grp.lastChunk].crc32);
      for (let k = grp.firstChunk; k <= grp.lastChunk; k++) this.c.progress(k);
      this.done[grp.index] = true;
      return;
    }
    this.c.log('saved', grp.firstChunk, 0);
    this.destroyed = true;
    if (saved.order === null) this.writeChunks(grp);
    else this.writeOneChunk(grp, 0, saved.order, saved.data);
  }

  private save(grp: WriteGroup, readers: readonly number[]): 'unchanged' | { order: number[]; data: Uint8Array } | { order: null; data: null } {
    const { p, target, io } = this.c;
    const reads = new GroupReads(this.slot, grp);
    for (const k of readers) {
      const set = reads.otherReader(k);
      this.decode(k, (src, len, _out, dep) => set.read(src, len, dep), true);
    }
    if (grp.firstChunk === grp.lastChunk) {
      // This chunk last: its output then stays in RAM for the write phase.
      const a = grp.firstChunk;
      const { data } = this.decode(a, (src, len, out, dep) => reads.ownRead(src, len, out, dep), false);
      const changed = new Set<number>();
      for (let s = grp.firstSector; s <= grp.lastSector; s++) {
        const [lo, hi] = this.sectorSpan(s);
        if (!io.equals(target, lo, data.subarray(lo - a * p.splitSize, hi - a * p.splitSize))) changed.add(s);
      }
      if (changed.size === 0) return 'unchanged';
      this.saveRuns(grp, reads.saveRuns((s) => changed.has(s)));
      const order = reads.order();
      this.saveMark(grp, order.map((s) => io.crcOf(target, ...this.span(s))));
      return { order, data };
    }
    let unchanged = true;
    for (let k = grp.firstChunk; k <= grp.lastChunk; k++) {
      const d = this.decode(k, (src, len, _out, dep) => reads.oldRead(src, len, dep), true);
      if (unchanged && !(d.crcOk && io.equals(target, k * p.splitSize, d.data))) unchanged = false;
    }
    if (unchanged) return 'unchanged';
    this.saveRuns(grp, reads.saveRuns(() => true));
    this.saveMark(grp, [io.crcOf(target, grp.start, Math.min(grp.end, p.newSize) - grp.start)]);
    return { order: null, data: null };
  }

  /** Slot bytes of sector s that belong to NEW ([start, min(end, newSize))). */
  private sectorSpan(s: number): [number, number] {
    const lo = sectorStart(this.slot, s);
    return [lo, Math.min(lo + sectorLength(this.slot, s), this.c.p.newSize)];
  }

  /** Offset and length of sectorSpan(s). */
  private span(s: number): [number, number] {
    const [lo, hi] = this.sectorSpan(s);
    return [lo, hi - lo];
  }

  /** The group's mark: its saves are complete, and the CRCs tell a resume which sectors were rewritten. */
  private saveMark(grp: WriteGroup, crcs: number[]): void {
    try {
      this.c.ring.saveMark(grp.start, crcs, grp.lastChunk, (r) => !this.chunkDone(r.keepUntil));
    } catch (e) {
      if (e instanceof RingFullError || e instanceof RingReadBackError) throw new RestoreFailure('backup', e.message);
      throw e;
    }
  }

  /**
   * Copies the runs' old bytes into the ring, skipping what it already holds, until all are there. Live
   * records are those whose keep-until chunk is not written yet. When the ring has no other room, this
   * group's own records may go (its old bytes are still in the slot): they are saved again on the next pass.
   */
  private saveRuns(grp: WriteGroup, runs: readonly SaveRun[]): void {
    const { ring, target, io } = this.c;
    const live = (r: RingRecord) => !this.chunkDone(r.keepUntil);
    const othersLive = (r: RingRecord) => live(r) && !(r.slotOffset >= grp.start && r.slotOffset + r.length <= grp.end);
    for (let pass = 0; ; pass++) {
      let missing = 0;
      for (const run of runs) {
        for (const piece of ring.uncovered(run.offset, run.length)) {
          missing++;
          for (let off = 0; off < piece.length; off += IO_BLOCK) {
            const n = Math.min(IO_BLOCK, piece.length - off);
            target.read(piece.offset + off, io.block, 0, n);
            try {
              try {
                ring.save(piece.offset + off, io.block.subarray(0, n), run.keepUntil, live);
              } catch (e) {
                if (!(e instanceof RingFullError)) throw e;
                ring.save(piece.offset + off, io.block.subarray(0, n), run.keepUntil, othersLive);
              }
            } catch (e) {
              if (e instanceof RingFullError || e instanceof RingReadBackError) throw new RestoreFailure('backup', e.message);
              throw e;
            }
          }
        }
      }
      if (missing === 0) return;
      if (pass === 3) throw new RestoreFailure('backup', 'the backup ring cannot hold the old bytes of one write group');
    }
  }

  // ---- write phase --------------------------------------------------------------------------------

  /**
   * A resume of a one-chunk group's write phase. Steps are written in order and a step's output reads
   * nothing unsaved of the sectors of earlier steps, so: the last step whose sector no longer holds its
   * old bytes (by the mark's CRCs) is the one under way, every step after it is still right to decode,
   * and so is that step itself. Steps before it are done.
   */
  private resumeOneChunk(grp: WriteGroup, oldCrcs: readonly number[]): void {
    const reads = new GroupReads(this.slot, grp);
    const data = this.decode(grp.firstChunk, (src, len, out, dep) => reads.ownRead(src, len, out, dep), true).data;
    const order = reads.order();
    let from = 0;
    for (let step = order.length - 1; step >= 0; step--) {
      if (this.c.io.crcOf(this.c.target, ...this.span(order[step])) !== oldCrcs[step]) {
        from = step;
        break;
      }
    }
    this.writeOneChunk(grp, from, order, data);
  }

  private writeOneChunk(grp: WriteGroup, fromStep: number, order: readonly number[], data: Uint8Array): void {
    const { p, target, io } = this.c;
    const a = grp.firstChunk;
    const base = a * p.splitSize;
    for (let step = fromStep; step < order.length; step++) {
      const s = order[step];
      const [lo, hi] = this.sectorSpan(s);
      const bytes = data.subarray(lo - base, hi - base);
      if (io.equals(target, lo, bytes)) continue;
      this.writeSector(s, lo, bytes);
    }
    const crc = io.crcOf(target, base, chunkLength(p, a));
    if (crc !== p.chunks[a].crc32) throw new RestoreFailure('newImage', `region ${a} does not hold chunk ${a} after its sectors were written`);
    this.c.log('chunk-done', a, crc);
    this.c.progress(a);
    this.done[grp.index] = true;
  }

  private writeSector(s: number, lo: number, bytes: Uint8Array): void {
    const { target, io } = this.c;
    for (let attempt = 0; ; attempt++) {
      target.erase(s);
      io.program(target, lo, bytes);
      if (io.equals(target, lo, bytes)) return;
      if (attempt === 1) throw new RestoreFailure('backup', `flash at ${lo} does not read back what was written`);
    }
  }

  private writeChunks(grp: WriteGroup): void {
    const { p, target, io } = this.c;
    for (let attempt = 0; ; attempt++) {
      io.eraseSectors(target, grp.firstSector, grp.lastSector);
      let ok = true;
      for (let k = grp.firstChunk; k <= grp.lastChunk; k++) {
        const { data } = this.decode(k, null, false);
        io.program(target, k * p.splitSize, data);
        if (!io.equals(target, k * p.splitSize, data)) {
          ok = false;
          break;
        }
        this.c.log('chunk-done', k, p.chunks[k].crc32);
        this.c.progress(k);
      }
      if (ok) {
        this.done[grp.index] = true;
        return;
      }
      if (attempt === 1) throw new RestoreFailure('backup', `flash at ${grp.start} does not read back what was written`);
    }
  }
}
