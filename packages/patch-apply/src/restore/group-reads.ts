// Which old bytes of a write group must be saved before its sectors are erased, worked out from the
// reads its chunks' decoding actually made.
//
// The fact it rests on: the command stream alone decides which source byte each output byte comes from
// (seeks, copy lengths and gaps are numbers of the stream), so a chunk decoded again after some of its
// source sectors were rewritten is still right at every output byte whose source bytes are intact or
// saved. Sectors are then rewritten one by one in a planned order, and only the old bytes of a sector that
// a later step, the sector itself, or a chunk of another group decoded later (the next group's first
// chunk: its look-back) will still read are saved. Firmware that moves code by less
// than a sector needs the sector's own bytes only.
//
// Granularity: blocks of SAVE_BLOCK bytes (the ring pads each record to the program unit).
import { sectorAt, sectorLength, sectorStart, type FlashGeometry } from '../flash/flash.js';
import type { WriteGroup } from './write-groups.js';
import type { Dependence } from '../transform/block.js';

export const SAVE_BLOCK = 8;
/**
 * How far (bytes) an output byte's dependence reaches past the source byte copied to it. The decoder
 * copies each source byte straight to its output position (plus a difference from the stream), so 0. A
 * transformed chunk reads a prediction of OLD, whose bytes depend on their neighbours: its reads come
 * with their codec's `dependence` instead (ReadTap), which widens them.
 */
export const DEPENDENCY_MARGIN = 0;

/** The old bytes that output from source bytes [lo, hi) depends on: those, or what `dep` says. */
function dependence(lo: number, hi: number, dep: Dependence | null): readonly [number, number] {
  return dep === null ? [lo, hi] : dep(lo, hi);
}

/** A saved run of old bytes: slot offset and length, both SAVE_BLOCK multiples. */
export interface SaveRun {
  readonly offset: number;
  readonly length: number;
  /** The chunk whose completion ends the run's use (the last of its readers to be written). */
  readonly keepUntil: number;
}

/** Old bytes of a group read by one other chunk, in SAVE_BLOCK blocks (to weigh one chunk order against another). */
export class BlockSet {
  readonly bits: Uint8Array;

  constructor(readonly group: WriteGroup) {
    this.bits = new Uint8Array(Math.ceil((group.end - group.start) / SAVE_BLOCK));
  }

  /** Old bytes [src, src + len) read, widened by `dep` when set (see ReadTap). */
  read(src: number, len: number, dep: Dependence | null = null): void {
    const [a, b] = dependence(src, src + len, dep);
    const lo = Math.max(a, this.group.start);
    const hi = Math.min(b, this.group.end);
    if (lo < hi) markBits(this.bits, Math.floor((lo - this.group.start) / SAVE_BLOCK), Math.ceil((hi - this.group.start) / SAVE_BLOCK));
  }

  get blocks(): number {
    return count(this.bits);
  }

  /** Bytes this set holds. */
  get bytes(): number {
    return this.bits.byteLength;
  }

  runs(keepUntil: number): SaveRun[] {
    const tags = new Int32Array(this.bits.length).fill(-1);
    for (let b = 0; b < tags.length; b++) if (this.bits[b] !== 0) tags[b] = keepUntil;
    return runsOf(tags, this.group, () => true);
  }
}

/**
 * Unsaved bytes between two runs with the same tag below which the runs are saved as one: a record's
 * header costs about as much as this many bytes of data.
 */
const MERGE_GAP = 32;

/** Runs of blocks of a group tagged with the same chunk (-1: not saved) and for which `keep(offset)` holds. */
function runsOf(tags: Int32Array, group: WriteGroup, keep: (at: number) => boolean): SaveRun[] {
  const runs = exactRuns(tags, group, keep);
  const out: SaveRun[] = [];
  for (const r of runs) {
    const last = out[out.length - 1];
    // Merged only inside one sector's keep-set: the bytes in between are kept too, which is harmless.
    if (last !== undefined && last.keepUntil === r.keepUntil && r.offset - (last.offset + last.length) <= MERGE_GAP && keep(last.offset + last.length))
      out[out.length - 1] = { offset: last.offset, length: r.offset + r.length - last.offset, keepUntil: r.keepUntil };
    else out.push(r);
  }
  return out;
}

function exactRuns(tags: Int32Array, group: WriteGroup, keep: (at: number) => boolean): SaveRun[] {
  const runs: SaveRun[] = [];
  let runStart = -1;
  let runTag = -1;
  for (let b = 0; b <= tags.length; b++) {
    const at = group.start + b * SAVE_BLOCK;
    const tag = b < tags.length && keep(at) ? tags[b] : -1;
    if (runStart >= 0 && tag !== runTag) {
      runs.push({ offset: runStart, length: Math.min(at, group.end) - runStart, keepUntil: runTag });
      runStart = -1;
    }
    if (tag >= 0 && runStart < 0) {
      runStart = at;
      runTag = tag;
    }
  }
  return runs;
}

/** Above this many sectors in one group the order is plain ascending or descending (the greedy plan is quadratic). */
const GREEDY_MAX_SECTORS = 256;

/**
 * Bytes of the (source sector, output sector) read maps a one-chunk group keeps for its greedy order, a
 * byte per block each. A group of n sectors may have n² of them: for a hostile package with one huge
 * chunk on small sectors, gigabytes. Past this budget the maps are dropped and the order is plain
 * ascending or descending, which each block's lowest and highest reader decide (linear in the group).
 * 128 KiB holds every map of a 64 KiB chunk on 4 KiB sectors (16 × 16 × 512 bytes): such groups are
 * planned as before whatever the package.
 */
export const PAIR_BUDGET = 128 * 1024;
/** What a read map costs beside its bitmap (a Map entry here; in C, its sector and a pointer). */
export const PAIR_ENTRY_BYTES = 16;

export class GroupReads {
  /**
   * Per source sector of the group: the blocks each output sector reads from it (byte per block), for
   * the greedy order; null past PAIR_BUDGET, above GREEDY_MAX_SECTORS sectors, and in a group of several chunks.
   */
  private readers: Map<number, Uint8Array>[] | null;
  private pairBytes = 0;
  /** Per block of a one-chunk group: the lowest and highest output sector (from firstSector) reading it; low > high: none. */
  private readonly low: Uint16Array | Uint32Array;
  private readonly high: Uint16Array | Uint32Array;
  /** Per block of the group: read as old bytes by the group's own chunks in a way every order must serve (multi-chunk groups, unknown outputs). */
  private readonly any: Uint8Array;
  /** Old bytes read by chunks of other groups decoded after this one is written, in the order they will be written. */
  private readonly others: { chunk: number; set: BlockSet }[] = [];
  private readonly sectors: number;
  private readonly blocksPerGroup: number;
  private readonly single: boolean;
  private planned: number[] | null = null;

  constructor(
    private readonly slot: FlashGeometry,
    readonly group: WriteGroup,
  ) {
    this.blocksPerGroup = Math.ceil((group.end - group.start) / SAVE_BLOCK);
    this.any = new Uint8Array(this.blocksPerGroup);
    this.sectors = group.lastSector - group.firstSector + 1;
    this.single = group.firstChunk === group.lastChunk;
    const Width = readerWidth(this.sectors) === 2 ? Uint16Array : Uint32Array;
    const n = this.single ? this.blocksPerGroup : 0;
    this.low = new Width(n).fill(-1);
    this.high = new Width(n);
    this.readers = this.single && this.sectors <= GREEDY_MAX_SECTORS ? Array.from({ length: this.sectors }, () => new Map<number, Uint8Array>()) : null;
  }

  /** Bytes this holds now: its maps (PAIR_ENTRY_BYTES each beside the bitmap) and its other readers' sets. */
  get bytes(): number {
    let n = this.any.byteLength + this.low.byteLength + this.high.byteLength;
    if (this.readers !== null) {
      n += this.pairBytes;
      for (const m of this.readers) n += m.size * PAIR_ENTRY_BYTES;
    }
    for (const o of this.others) n += o.set.bytes;
    return n;
  }

  /**
   * The group's slot sectors in the order steps rewrite them: greedily, the sector whose old bytes the
   * sectors not yet written read least goes next (ties: the lower one), so a sector is destroyed when
   * little of it is still needed. Without the read maps (see PAIR_BUDGET), ascending or descending,
   * whichever saves less. Depends on the read positions only, so a resume finds the same order.
   */
  order(): number[] {
    if (this.planned !== null) return this.planned;
    const all = Array.from({ length: this.sectors }, (_, k) => this.group.firstSector + k);
    if (this.readers === null) {
      this.planned = this.plainCost(true) <= this.plainCost(false) ? all : all.reverse();
      return this.planned;
    }
    const remaining = new Set(all);
    const out: number[] = [];
    while (remaining.size > 0) {
      let best = -1;
      let bestCost = Infinity;
      for (const z of remaining) {
        const c = count(this.neededOf(z, remaining));
        if (c < bestCost) {
          bestCost = c;
          best = z;
        }
      }
      out.push(best);
      remaining.delete(best);
    }
    this.planned = out;
    return out;
  }

  /**
   * A read of the group's own chunk (a one-chunk group) of old bytes [src, src + len) for output slot
   * bytes [out, out + len); `out` null when the output position is unknown (then every sector depends on
   * it). In a group of several chunks (erased whole) every read is an oldRead.
   */
  ownRead(src: number, len: number, out: number | null, dep: Dependence | null = null): void {
    const g = this.group;
    const [a, b] = dependence(src, src + len, dep);
    if (Math.max(a, g.start) >= Math.min(b, g.end)) return;
    if (out === null || !this.single) return this.oldRead(src, len, dep);
    if (this.planned !== null) throw new Error('internal: a read of the group after its order was planned');
    // Output byte out + i comes from source byte src + i: split the read at output sector boundaries so
    // each output sector depends only on its own share (widened by DEPENDENCY_MARGIN).
    for (let o = out; o < out + len; ) {
      const y = sectorAt(this.slot, o);
      const yEnd = Math.min(out + len, sectorStart(this.slot, y) + sectorLength(this.slot, y));
      const lo = Math.max(out, o - DEPENDENCY_MARGIN);
      const hi = Math.min(out + len, yEnd + DEPENDENCY_MARGIN);
      const [from, to] = dependence(src + (lo - out), src + (hi - out), dep);
      this.sourceRead(from, to, y);
      o = yEnd;
    }
  }

  /** Old bytes [src, src + len) read by something every order must serve (look-back, multi-chunk groups). */
  oldRead(src: number, len: number, dep: Dependence | null = null): void {
    const [a, b] = dependence(src, src + len, dep);
    const lo = Math.max(a, this.group.start);
    const hi = Math.min(b, this.group.end);
    if (lo < hi) markBits(this.any, Math.floor((lo - this.group.start) / SAVE_BLOCK), Math.ceil((hi - this.group.start) / SAVE_BLOCK));
  }

  /**
   * The old-byte reads of `chunk`, of another group, decoded after this group is rewritten. Give them in the
   * order their chunks will be written: a block several need is kept until the last of them is done.
   */
  otherReader(chunk: number): BlockSet {
    const set = new BlockSet(this.group);
    this.others.push({ chunk, set });
    return set;
  }

  /**
   * The runs to save when the sectors for which `destroyed` holds are rewritten in order(), each tagged
   * with the chunk whose completion ends its use.
   */
  saveRuns(destroyed: (sector: number) => boolean): SaveRun[] {
    const order = this.order();
    const own = this.group.lastChunk;
    const tags = new Int32Array(this.blocksPerGroup).fill(-1);
    for (let b = 0; b < tags.length; b++) if (this.any[b] !== 0) tags[b] = own;
    order.forEach((z, step) => {
      if (!destroyed(z)) return;
      const bits = this.neededAt(order, step);
      const first = (sectorStart(this.slot, z) - this.group.start) / SAVE_BLOCK;
      for (let b = 0; b < bits.length; b++) if (bits[b] !== 0) tags[first + b] = own;
    });
    for (const { chunk, set } of this.others) for (let b = 0; b < tags.length; b++) if (set.bits[b] !== 0) tags[b] = chunk;
    return runsOf(tags, this.group, (at) => destroyed(sectorAt(this.slot, at)));
  }

  /** Blocks of sector order[step] read by it and the sectors after it in `order` (one entry per block). */
  private neededAt(order: readonly number[], step: number): Uint8Array {
    const z = order[step];
    if (this.readers !== null) return this.neededOf(z, new Set(order.slice(step)));
    const up = order.length < 2 || order[1] > order[0];
    const bits = new Uint8Array(sectorLength(this.slot, z) / SAVE_BLOCK);
    if (!this.single) return bits;
    const first = (sectorStart(this.slot, z) - this.group.start) / SAVE_BLOCK;
    for (let i = 0; i < bits.length; i++) if (this.neededPlain(first + i, z - this.group.firstSector, up)) bits[i] = 1;
    return bits;
  }

  /**
   * Without maps the order is monotone: block b is needed when sector zr (from the group's first) is
   * rewritten while its highest (ascending) or lowest (descending) reader is not written yet.
   */
  private neededPlain(b: number, zr: number, up: boolean): boolean {
    const lo = this.low[b];
    const hi = this.high[b];
    return lo <= hi && (up ? hi >= zr : lo <= zr);
  }

  /** Blocks of sector z read by the output sectors in `by` (z's own bit map, one entry per block). */
  private neededOf(z: number, by: ReadonlySet<number>): Uint8Array {
    const bits = new Uint8Array(sectorLength(this.slot, z) / SAVE_BLOCK);
    for (const [y, b] of this.readers![z - this.group.firstSector]) if (by.has(y)) for (let i = 0; i < b.length; i++) bits[i] |= b[i];
    return bits;
  }

  /** Blocks saved when every sector is rewritten in ascending (`up`) or descending order. */
  private plainCost(up: boolean): number {
    if (!this.single) return 0;
    let n = 0;
    for (let zr = 0; zr < this.sectors; zr++) {
      const z = this.group.firstSector + zr;
      const first = (sectorStart(this.slot, z) - this.group.start) / SAVE_BLOCK;
      const end = first + sectorLength(this.slot, z) / SAVE_BLOCK;
      for (let b = first; b < end; b++) if (this.neededPlain(b, zr, up)) n++;
    }
    return n;
  }

  /** Source bytes [lo, hi) (clamped to the group) read for outputs in sector y. */
  private sourceRead(lo0: number, hi0: number, y: number): void {
    const g = this.group;
    const lo = Math.max(lo0, g.start);
    const hi = Math.min(hi0, g.end);
    const yr = y - g.firstSector;
    for (let at = lo; at < hi; ) {
      const z = sectorAt(this.slot, at);
      const zStart = sectorStart(this.slot, z);
      const zEnd = Math.min(hi, zStart + sectorLength(this.slot, z));
      const b0 = Math.floor((at - g.start) / SAVE_BLOCK);
      const b1 = Math.ceil((zEnd - g.start) / SAVE_BLOCK);
      for (let b = b0; b < b1; b++) {
        if (this.low[b] > yr) this.low[b] = yr;
        if (this.high[b] < yr) this.high[b] = yr;
      }
      if (this.readers !== null) {
        const map = this.readers[z - g.firstSector];
        let bits = map.get(y);
        if (bits === undefined) {
          const n = sectorLength(this.slot, z) / SAVE_BLOCK;
          if (this.pairBytes + n > PAIR_BUDGET) this.readers = null;
          else {
            bits = new Uint8Array(n);
            map.set(y, bits);
            this.pairBytes += n;
          }
        }
        if (bits !== undefined) markBits(bits, Math.floor((at - zStart) / SAVE_BLOCK), Math.ceil((zEnd - zStart) / SAVE_BLOCK));
      }
      at = zEnd;
    }
  }
}

/** Bytes of each lowest / highest reader entry for a group of `sectors` sectors. */
function readerWidth(sectors: number): 2 | 4 {
  return sectors < 0xffff ? 2 : 4;
}

/**
 * The most bytes a GroupReads of `group` takes at once: what it holds (its maps at most PAIR_BUDGET and
 * their entries) and what its order() and saveRuns() take for a while (the order and its sets, a tag per
 * block, one sector's bit map); not its otherReader sets.
 */
export function groupReadsBytes(slot: FlashGeometry, group: WriteGroup): number {
  const blocks = Math.ceil((group.end - group.start) / SAVE_BLOCK);
  const sectors = group.lastSector - group.firstSector + 1;
  let largest = 0;
  let smallest = Infinity;
  for (let s = group.firstSector; s <= group.lastSector; s++) {
    const n = sectorLength(slot, s);
    largest = Math.max(largest, n);
    smallest = Math.min(smallest, n);
  }
  let n = blocks + 4 * blocks + 16 * sectors + largest / SAVE_BLOCK;
  if (group.firstChunk === group.lastChunk) {
    n += 2 * readerWidth(sectors) * blocks;
    // Each output sector maps each source sector at most once: the maps' bitmaps are at most sectors × blocks.
    if (sectors <= GREEDY_MAX_SECTORS) n += Math.min(PAIR_BUDGET, sectors * blocks) + PAIR_ENTRY_BYTES * Math.min(sectors * sectors, Math.floor(PAIR_BUDGET / (smallest / SAVE_BLOCK)));
  }
  return n;
}

/** Bytes of a BlockSet of `group`. */
export function blockSetBytes(group: WriteGroup): number {
  return Math.ceil((group.end - group.start) / SAVE_BLOCK);
}

function markBits(bits: Uint8Array, b0: number, b1: number): void {
  bits.fill(1, b0, b1);
}

function count(bits: Uint8Array): number {
  let n = 0;
  for (const b of bits) n += b;
  return n;
}

/** Bytes of a list of runs. */
export function runBytes(runs: readonly SaveRun[]): number {
  let n = 0;
  for (const r of runs) n += r.length;
  return n;
}
