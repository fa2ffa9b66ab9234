// The backup ring: the in-place restore's store for old bytes it will still read after their sector is
// erased. A log of records in the sectors of the backup partition, written in ring order from a sector
// chosen by the update id (so wear spreads over updates), each sector erased just before it is reused.
//
// Record (RING_HEADER = 32 bytes, little-endian, then the data padded with the erased value to a multiple
// of RING_ALIGN and of the program unit, so every header starts on a unit):
//    0  u32  magic: 'OTAB' saved old bytes, 'OTAZ' saved old bytes packed (below), 'OTAM' a group's mark
//            (the CRC-32 of each of its sectors' old bytes, in the order they are rewritten; written last
//            when the group's saves are complete)
//    4  u32  update id
//    8  u32  sequence number (increasing within the update)
//   12  u32  slot offset of the saved bytes (a mark: of its group)
//   16  u32  length of the data on flash (> 0)
//   20  u32  CRC-32 of the data on flash
//   24  u32  keep-until: the chunk whose completion ends the bytes' use (then the record is dead)
//   28  u32  CRC-32 of bytes 0..27
// The data is programmed first and the header last, each once, into erased space: a cut leaves a record
// whole or without a valid header, and no unit is ever programmed twice. A record belongs to one sector;
// a sector's records follow one another from its start, so a scan walks them and stops at the first
// one that is not whole (the sector is then full: nothing more is written there until it is erased).
// Records of another update mark a sector free for reuse; they can never be mistaken for ours.
// A packed record's data is a u32 count of old bytes (1 to LZMA_PACK_MAX), then their raw LZMA stream
// (lzma-encoder.ts): old bytes are saved packed when that is smaller, so a backup takes less ring and
// the ring is erased less often. Firmware packs to about three quarters.
import { crc32 } from '../crc32.js';
import { sectorCount, sectorLength, sectorStart, type Flash } from '../flash/flash.js';
import { SAVE_BLOCK } from './group-reads.js';
import { RecordIndex } from './record-index.js';
import { LzmaDecoder, LzmaError, lzmaDecoderRamBytes } from '../lzma-decoder.js';
import { LZMA_ENCODER_RAM_BYTES, LZMA_PACK_MAX, LZMA_PACK_PROPS, LzmaPacker } from '../lzma-encoder.js';

export const RING_MAGIC = 0x4241544f; // bytes 'O' 'T' 'A' 'B'
export const MARK_MAGIC = 0x4d41544f; // bytes 'O' 'T' 'A' 'M'
export const PACKED_MAGIC = 0x5a41544f; // bytes 'O' 'T' 'A' 'Z'
/** Bytes before a packed record's stream: the count of old bytes it holds. */
const PACKED_PREFIX = 4;
/** A run is packed only when that saves at least this many bytes (a record header's worth is not worth less). */
const PACK_GAIN_MIN = 16;
/** RAM of packing: the encoder, a decoder for reading packed records back, and the block it decodes to. */
export const RING_PACK_RAM_BYTES = LZMA_ENCODER_RAM_BYTES + lzmaDecoderRamBytes(LZMA_PACK_PROPS) + 2 * LZMA_PACK_MAX;
export const RING_HEADER = 32;
const IO = 4096;

export interface RingRecord {
  readonly slotOffset: number;
  /** Slot bytes the record holds. */
  readonly length: number;
  /** Offset of the data in the backup partition. */
  readonly at: number;
  /** Bytes of the data on flash (length, or a packed record's prefix and stream). */
  readonly stored: number;
  readonly seq: number;
  readonly sector: number;
  /** CRC-32 of the data on flash. */
  readonly crc: number;
  /** The chunk whose completion ends the record's use. */
  readonly keepUntil: number;
  readonly kind: 'old' | 'packed' | 'mark';
}

const MAGIC: Record<RingRecord['kind'], number> = { old: RING_MAGIC, packed: PACKED_MAGIC, mark: MARK_MAGIC };

/** Records written to the ring do not read back (worn or failing flash). */
export class RingReadBackError extends Error {
  override name = 'RingReadBackError';
}

/** The ring has no sector it may erase for the next record: it is too small for what is live. */
export class RingFullError extends Error {
  override name = 'RingFullError';
}

/** The ring's packing state: encoder, decoder, the block a packed record decodes to (cached by record), the data of the next one. */
interface Packing {
  packer: LzmaPacker;
  decoder: LzmaDecoder;
  block: Uint8Array;
  stored: Uint8Array;
  cachedAt: number;
  cachedSeq: number;
}

interface SectorState {
  /** Where the next record may go, or null when the sector is full, dirty or another update's. */
  fill: number | null;
  /** Every byte reads erased (no erase needed before use). */
  erased: boolean;
}

/** Records start on this alignment (at least; the program unit when larger). */
export const RING_ALIGN = 8;
const align = (unit: number) => Math.max(RING_ALIGN, unit);

/** Bytes a run of `length` saved bytes takes in one record on flash of program unit `unit`. */
export function recordBytes(length: number, unit: number): number {
  const a = align(unit);
  return RING_HEADER + Math.ceil(length / a) * a;
}

export class BackupRing {
  /** Saved old bytes of this update, by slot offset. */
  private readonly records = new RecordIndex<RingRecord>();
  /** Group marks of this update. */
  private marks: RingRecord[] = [];
  private readonly state: SectorState[] = [];
  private open = -1;
  private nextSeq = 1;
  private erasesDone = 0;
  private readonly block = new Uint8Array(IO);
  private readonly header = new Uint8Array(RING_HEADER);
  /** Packing, made on first use (a ring only asked whether it holds records needs neither). */
  private pack: Packing | null = null;
  readonly sectors: number;

  constructor(
    private readonly ring: Flash,
    private readonly updateId: number,
  ) {
    this.sectors = sectorCount(ring.geometry);
    this.scan();
  }

  /** The ring's geometry (the backup partition's). */
  get geometry() {
    return this.ring.geometry;
  }

  get erases(): number {
    return this.erasesDone;
  }

  /** Whether the ring holds any record of this update (a restore under way, even with its journal lost). */
  hasRecords(): boolean {
    return this.recordCount() > 0 || this.marks.length > 0;
  }

  recordCount(): number {
    return this.records.size;
  }

  /** The record covering slot byte `offset`, or null. */
  find(offset: number): RingRecord | null {
    return this.records.find(offset);
  }

  /** The lowest slot offset above `offset` where a record starts (Infinity when none does). */
  nextStart(offset: number): number {
    return this.records.nextStart(offset);
  }

  /** Slot bytes of [start, start + length) that no record covers, as runs (block-aligned input gives block-aligned runs). */
  uncovered(start: number, length: number): { offset: number; length: number }[] {
    return this.records.uncovered(start, length, SAVE_BLOCK);
  }

  /** Reads saved bytes of `rec` for slot bytes [offset, offset + length) (inside the record). */
  read(rec: RingRecord, offset: number, dst: Uint8Array, dstOffset: number, length: number): void {
    if (rec.kind !== 'packed') return this.ring.read(rec.at + (offset - rec.slotOffset), dst, dstOffset, length);
    const p = this.packing();
    if (p.cachedAt !== rec.at || p.cachedSeq !== rec.seq) this.unpack(rec, p);
    dst.set(p.block.subarray(offset - rec.slotOffset, offset - rec.slotOffset + length), dstOffset);
  }

  private packing(): Packing {
    return (this.pack ??= {
      packer: new LzmaPacker(),
      decoder: new LzmaDecoder(LZMA_PACK_PROPS),
      block: new Uint8Array(LZMA_PACK_MAX),
      stored: new Uint8Array(LZMA_PACK_MAX),
      cachedAt: -1,
      cachedSeq: -1,
    });
  }

  /** Decodes a packed record into the pack block. Its stream is smaller than the bytes it holds, so it fits the I/O block. */
  private unpack(rec: RingRecord, p: Packing): void {
    p.cachedAt = -1;
    const d = p.decoder;
    const n = rec.stored - PACKED_PREFIX;
    this.ring.read(rec.at + PACKED_PREFIX, this.block, 0, n);
    let got = 0;
    try {
      d.reset(rec.length);
      d.feed(this.block, 0, n, true);
      for (;;) {
        const k = d.read(p.block, got, rec.length - got);
        got += k;
        if (d.done || k === 0) break;
      }
    } catch (e) {
      if (!(e instanceof LzmaError)) throw e;
    }
    if (!d.done || got !== rec.length) throw new RingReadBackError(`the packed backup record at ${rec.at} does not decode to its ${rec.length} bytes`);
    p.cachedAt = rec.at;
    p.cachedSeq = rec.seq;
  }

  /**
   * Saves `data` (the old slot bytes at `slotOffset`) as one or more records. `live(rec)` tells which
   * records must survive: a sector holding one is never erased for room.
   */
  save(slotOffset: number, data: Uint8Array, keepUntil: number, live: (rec: RingRecord) => boolean, kind: 'old' | 'mark' = 'old'): void {
    let done = 0;
    let failures = 0;
    while (done < data.length) {
      let room = this.open < 0 ? 0 : this.roomIn(this.open);
      if (room < RING_HEADER + align(this.ring.geometry.programUnit)) {
        this.openNext(live);
        room = this.roomIn(this.open);
      }
      // Whole save blocks, and whole units of room (a record's padding must fit too).
      const a = align(this.ring.geometry.programUnit);
      const fit = room - RING_HEADER - ((room - RING_HEADER) % a);
      const n = Math.min(data.length - done, fit - (fit % SAVE_BLOCK));
      if (kind === 'mark' && n < data.length) {
        // A mark is one record: start it in a fresh sector if this one is too full.
        if (this.state[this.open].fill === 0) throw new RingFullError(`a ${data.length}-byte group mark does not fit a ring sector`);
        this.state[this.open].fill = null;
        continue;
      }
      const packed = kind === 'old' ? this.packed(data.subarray(done, Math.min(data.length, done + LZMA_PACK_MAX)), fit) : null;
      const held = packed?.length ?? n;
      if (!this.append(slotOffset + done, packed?.stored ?? data.subarray(done, done + n), keepUntil, packed === null ? kind : 'packed', held)) {
        if (++failures > 2) throw new RingReadBackError(`backup ring records do not read back what was written (${failures} sectors tried)`);
        continue;
      }
      done += held;
    }
  }

  /**
   * `old` (at most LZMA_PACK_MAX bytes) as a packed record's data of at most `room` bytes, or of a
   * shorter prefix of it when the whole does not fit there; null when packing saves too little. The
   * data is a view of the packing buffer, valid until the next call.
   */
  private packed(old: Uint8Array, room: number): { stored: Uint8Array; length: number } | null {
    const { packer, stored } = this.packing();
    let take = old.length;
    if (take < 2 * PACK_GAIN_MIN) return null;
    let stream = packer.pack(old, take - PACK_GAIN_MIN - PACKED_PREFIX);
    if (stream === null) return null;
    if (PACKED_PREFIX + stream.length > room) {
      // The room left in this sector takes about its share of the whole (a sector's tail would
      // otherwise be filled with unpacked bytes).
      take = Math.floor(((take * (room - PACKED_PREFIX)) / stream.length) * 0.95);
      take -= take % SAVE_BLOCK;
      if (take < 2 * PACK_GAIN_MIN) return null;
      stream = packer.pack(old.subarray(0, take), Math.min(take - PACK_GAIN_MIN, room) - PACKED_PREFIX);
      if (stream === null) return null;
    }
    new DataView(stored.buffer).setUint32(0, take, true);
    stored.set(stream, PACKED_PREFIX);
    return { stored: stored.subarray(0, PACKED_PREFIX + stream.length), length: take };
  }

  /**
   * Writes the mark of the group starting at slot offset `groupStart`: the CRC-32 of the old bytes of its
   * sectors, in the order the restore rewrites them. Its presence says the group's saves are complete.
   */
  saveMark(groupStart: number, crcs: readonly number[], keepUntil: number, live: (rec: RingRecord) => boolean): void {
    const data = new Uint8Array(Math.max(1, crcs.length) * 4);
    const dv = new DataView(data.buffer);
    crcs.forEach((c, i) => dv.setUint32(i * 4, c, true));
    this.save(groupStart, data, keepUntil, live, 'mark');
  }

  /** The CRCs of the mark of the group starting at `groupStart`, or null when the ring holds none. */
  markOf(groupStart: number, sectors: number): number[] | null {
    const m = this.marks.find((r) => r.slotOffset === groupStart && r.length === Math.max(1, sectors) * 4);
    if (m === undefined) return null;
    const data = new Uint8Array(m.length);
    this.ring.read(m.at, data);
    if (crc32(data) !== m.crc) return null;
    const dv = new DataView(data.buffer);
    return Array.from({ length: sectors }, (_, i) => dv.getUint32(i * 4, true));
  }

  /** Drops every record and sector state and reads the ring again (after a failed write). */
  scan(): void {
    const found: RingRecord[] = [];
    this.marks = [];
    this.state.length = 0;
    this.open = -1;
    let maxSeq = 0;
    let maxSeqSector = -1;
    const g = this.ring.geometry;
    for (let s = 0; s < this.sectors; s++) {
      const base = sectorStart(g, s);
      const size = sectorLength(g, s);
      let pos = 0;
      let fill: number | null = null;
      let erasedAll = false;
      for (;;) {
        if (pos + RING_HEADER > size) break;
        this.ring.read(base + pos, this.header);
        if (this.isErased(this.header, RING_HEADER)) {
          // A clean tail may take more records; a torn data area after an unwritten header may not.
          if (this.rangeErased(base + pos, size - pos)) {
            fill = pos;
            erasedAll = pos === 0;
          }
          break;
        }
        const rec = this.decodeHeader(this.header, base + pos, s, size - pos);
        if (rec === null || rec === 'foreign' || !this.dataIntact(rec)) break;
        (rec.kind === 'mark' ? this.marks : found).push(rec);
        if (rec.seq >= maxSeq) {
          maxSeq = rec.seq;
          maxSeqSector = s;
        }
        pos += recordBytes(rec.stored, g.programUnit);
      }
      this.state.push({ fill, erased: erasedAll });
    }
    this.records.load(found);
    this.nextSeq = maxSeq + 1;
    // Go on in the sector of the newest record while its tail is clean.
    if (maxSeqSector >= 0 && this.state[maxSeqSector].fill !== null) this.open = maxSeqSector;
  }

  private roomIn(s: number): number {
    const fill = this.state[s].fill;
    return fill === null ? 0 : sectorLength(this.ring.geometry, s) - fill;
  }

  /** Opens the next sector in ring order that holds no live record, erasing it unless it reads erased. */
  private openNext(live: (rec: RingRecord) => boolean): void {
    const start = this.open < 0 ? this.updateId % this.sectors : (this.open + 1) % this.sectors;
    for (let k = 0; k < this.sectors; k++) {
      const s = (start + k) % this.sectors;
      if (s === this.open) continue;
      if (sectorLength(this.ring.geometry, s) < RING_HEADER + align(this.ring.geometry.programUnit)) continue;
      const holdsLive = (r: RingRecord) => r.sector === s && live(r);
      if (this.records.some(holdsLive) || this.marks.some(holdsLive)) continue;
      this.records.dropSector(s);
      this.marks = this.marks.filter((r) => r.sector !== s);
      if (!this.state[s].erased) {
        this.ring.erase(s);
        this.erasesDone++;
      }
      this.state[s] = { fill: 0, erased: true };
      this.open = s;
      return;
    }
    throw new RingFullError(`the ${this.sectors}-sector backup ring holds no sector it may reuse`);
  }

  /**
   * Writes one record into the open sector; false (and the sector closed) when it does not read back.
   * `data` is what goes on flash; `length` the slot bytes it holds (data.length unless packed).
   */
  private append(slotOffset: number, data: Uint8Array, keepUntil: number, kind: RingRecord['kind'], length: number): boolean {
    const g = this.ring.geometry;
    const s = this.open;
    const pos = this.state[s].fill!;
    const at = sectorStart(g, s) + pos;
    const dataLen = recordBytes(data.length, g.programUnit) - RING_HEADER;
    const seq = this.nextSeq++;
    this.state[s] = { fill: null, erased: false }; // until the record is known to be whole
    const body = new Uint8Array(dataLen).fill(g.erasedValue);
    body.set(data);
    this.ring.program(at + RING_HEADER, body);
    const dv = new DataView(this.header.buffer);
    dv.setUint32(0, MAGIC[kind], true);
    dv.setUint32(4, this.updateId, true);
    dv.setUint32(8, seq, true);
    dv.setUint32(12, slotOffset, true);
    dv.setUint32(16, data.length, true);
    dv.setUint32(20, crc32(data), true);
    dv.setUint32(24, keepUntil, true);
    dv.setUint32(28, crc32(this.header.subarray(0, 28)), true);
    this.ring.program(at, this.header);
    const rec: RingRecord = { slotOffset, length, at: at + RING_HEADER, stored: data.length, seq, sector: s, crc: dv.getUint32(20, true), keepUntil, kind };
    const back = new Uint8Array(RING_HEADER);
    this.ring.read(at, back);
    if (back.some((b, i) => b !== this.header[i]) || !this.dataIntact(rec)) {
      // Worn or failing flash: leave the sector (it is full now) and write the record again elsewhere.
      this.open = -1;
      return false;
    }
    this.state[s] = { fill: pos + recordBytes(data.length, g.programUnit), erased: false };
    if (kind === 'mark') {
      this.marks.push(rec);
      return true;
    }
    this.records.add(rec);
    return true;
  }

  private decodeHeader(h: Uint8Array, at: number, sector: number, room: number): RingRecord | null | 'foreign' {
    const dv = new DataView(h.buffer, h.byteOffset, RING_HEADER);
    const magic = dv.getUint32(0, true);
    if ((magic !== RING_MAGIC && magic !== MARK_MAGIC && magic !== PACKED_MAGIC) || dv.getUint32(28, true) !== crc32(h.subarray(0, 28))) return null;
    const packed = magic === PACKED_MAGIC;
    const stored = dv.getUint32(16, true);
    if (stored === 0 || recordBytes(stored, this.ring.geometry.programUnit) > room) return null;
    if (dv.getUint32(4, true) !== this.updateId) return 'foreign';
    let length = stored;
    if (packed) {
      // The count of bytes held, checked against the stream's bound (a packed stream is shorter than
      // what it holds); the data's CRC is checked by the caller before the record is used.
      if (stored <= PACKED_PREFIX || stored > IO) return null;
      this.ring.read(at + RING_HEADER, this.block, 0, PACKED_PREFIX);
      length = new DataView(this.block.buffer).getUint32(0, true);
      if (length === 0 || length > LZMA_PACK_MAX || length <= stored) return null;
    }
    return {
      slotOffset: dv.getUint32(12, true),
      length,
      stored,
      at: at + RING_HEADER,
      seq: dv.getUint32(8, true),
      sector,
      crc: dv.getUint32(20, true),
      keepUntil: dv.getUint32(24, true),
      kind: magic === MARK_MAGIC ? 'mark' : packed ? 'packed' : 'old',
    };
  }

  private dataIntact(rec: RingRecord): boolean {
    let crc = 0;
    for (let off = 0; off < rec.stored; off += IO) {
      const n = Math.min(IO, rec.stored - off);
      this.ring.read(rec.at + off, this.block, 0, n);
      crc = crc32(this.block.subarray(0, n), crc);
    }
    return crc === rec.crc;
  }

  private isErased(b: Uint8Array, n: number): boolean {
    const e = this.ring.geometry.erasedValue;
    for (let i = 0; i < n; i++) if (b[i] !== e) return false;
    return true;
  }

  private rangeErased(offset: number, length: number): boolean {
    for (let off = 0; off < length; off += IO) {
      const n = Math.min(IO, length - off);
      this.ring.read(offset + off, this.block, 0, n);
      if (!this.isErased(this.block, n)) return false;
    }
    return true;
  }
}
