/**
 * Restore journal: an append-only log in two sectors of the params partition that
 * survives power cuts at any point, torn writes included.
 *
 * Record (JOURNAL_RECORD_SIZE = 28 bytes, little-endian), stored in slots of
 * roundUp(28, programUnit) bytes, each programmed once; padding holds the erased value:
 *    0  u32  magic 'OTAJ'
 *    4  u32  sequence number (strictly increasing over the journal's life)
 *    8  u32  update id (which update this record belongs to)
 *   12  u8   state code (RestoreStateName)
 *   13  u8   record version (1)
 *   14  u16  reserved, 0
 *   16  u32  chunk index
 *   20  u32  aux (state specific, e.g. CRC-32 of a backed-up chunk)
 *   24  u32  CRC-32 of bytes 0..23
 *
 * Rules that make it power-safe:
 *  - A record is only ever programmed into a slot that is entirely erased, after the
 *    last non-erased slot of the sector (a torn slot is never reused or "repaired"), in
 *    one program call: no unit is ever programmed twice (program-once ECC flash).
 *  - When the current sector is full, the other sector is erased and the record goes
 *    to its slot 0. The full sector, which holds the newest good record, is not
 *    touched until the *next* wrap.
 *  - On read, every slot of both sectors is decoded; anything that fails the magic,
 *    CRC or field checks is ignored, and the valid record with the highest sequence
 *    number wins. A cut therefore leaves either the record being written or the one
 *    before it as the latest.
 * Wear: one erase every `slotsPerSector` appends (starting from erased sectors, N
 * appends cost floor((N - 1) / slotsPerSector) erases).
 */
import { crc32 } from '../crc32.js';
import { FlashError, roundUp, sectorCount, sectorLength, sectorStart, type Flash } from './flash.js';
import { PARAMS_JOURNAL_SECTOR } from './partition-layout.js';

/**
 * Progress of a restore (in place or A/B). The restore state machine owns the
 * transitions; the journal only stores them.
 *  - 'idle':           nothing done yet for this update (written by reset()).
 *  - 'verified':       the package in the OTA partition matched the hand-over
 *                      SHA-256; destructive work may start.
 *  - 'saved':          in place: every old byte the restore of the group of sectors and
 *                      chunks starting at chunk `chunk` will read after its sectors are
 *                      erased is in the backup ring; its sectors may now be rewritten.
 *  - 'chunk-done':     chunks up to `chunk` of the new image are fully written; aux = its CRC-32.
 *  - 'image-verified': the whole new image is written and checked; aux = CRC-32 or a
 *                      digest prefix of the image.
 *  - 'boot-switched':  the hand-over / boot selection now points at the new image.
 *  - 'failed':         the restore gave up; aux = an error code.
 */
export type RestoreStateName =
  | 'idle'
  | 'verified'
  | 'saved'
  | 'chunk-done'
  | 'image-verified'
  | 'boot-switched'
  | 'failed';

/** Codes are index + 1 ('saved' took the code of the former 'backed-up'). */
const STATES: readonly RestoreStateName[] = [
  'idle',
  'verified',
  'saved',
  'chunk-done',
  'image-verified',
  'boot-switched',
  'failed',
];

export interface JournalEntry {
  readonly seq: number;
  readonly state: RestoreStateName;
  readonly chunk: number;
  readonly aux: number;
  readonly updateId: number;
}

export type JournalInput = Omit<JournalEntry, 'seq'>;

export class JournalError extends Error {
  override name = 'JournalError';
}

export const JOURNAL_MAGIC = 0x4a41544f; // bytes 'O' 'T' 'A' 'J'
export const JOURNAL_VERSION = 1;
export const JOURNAL_RECORD_SIZE = 28;
const CRC_OFFSET = 24;

function checkU32(v: number, field: string): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new JournalError(`${field}: not a u32: ${v}`);
}

/** Encodes into `out` (at least JOURNAL_RECORD_SIZE bytes). */
export function encodeJournalEntry(e: JournalEntry, out: Uint8Array): void {
  checkU32(e.seq, 'seq');
  checkU32(e.updateId, 'updateId');
  checkU32(e.chunk, 'chunk');
  checkU32(e.aux, 'aux');
  const code = STATES.indexOf(e.state);
  if (code < 0) throw new JournalError(`unknown state ${String(e.state)}`);
  const dv = new DataView(out.buffer, out.byteOffset, JOURNAL_RECORD_SIZE);
  dv.setUint32(0, JOURNAL_MAGIC, true);
  dv.setUint32(4, e.seq, true);
  dv.setUint32(8, e.updateId, true);
  out[12] = code + 1;
  out[13] = JOURNAL_VERSION;
  dv.setUint16(14, 0, true);
  dv.setUint32(16, e.chunk, true);
  dv.setUint32(20, e.aux, true);
  dv.setUint32(CRC_OFFSET, crc32(out.subarray(0, CRC_OFFSET)), true);
}

/** Decodes a record, or returns null if it is not a valid one (torn, corrupt, free). */
export function decodeJournalEntry(b: Uint8Array): JournalEntry | null {
  if (b.length < JOURNAL_RECORD_SIZE) return null;
  const dv = new DataView(b.buffer, b.byteOffset, JOURNAL_RECORD_SIZE);
  if (dv.getUint32(0, true) !== JOURNAL_MAGIC) return null;
  if (dv.getUint32(CRC_OFFSET, true) !== crc32(b.subarray(0, CRC_OFFSET))) return null;
  const code = b[12];
  if (code < 1 || code > STATES.length || b[13] !== JOURNAL_VERSION || dv.getUint16(14, true) !== 0) return null;
  return {
    seq: dv.getUint32(4, true),
    updateId: dv.getUint32(8, true),
    state: STATES[code - 1],
    chunk: dv.getUint32(16, true),
    aux: dv.getUint32(20, true),
  };
}

/**
 * A stable 32-bit id for one update attempt: CRC-32 over the package SHA-256 and the
 * hand-over sequence number, so re-sending the same package still starts afresh.
 */
export function deriveUpdateId(packageSha256: Uint8Array, handoverSeq: number): number {
  if (packageSha256.length !== 32) throw new JournalError('packageSha256 must be 32 bytes');
  checkU32(handoverSeq, 'handoverSeq');
  const buf = new Uint8Array(36);
  buf.set(packageSha256);
  new DataView(buf.buffer).setUint32(32, handoverSeq, true);
  return crc32(buf);
}

export class Journal {
  readonly slotSize: number;
  /** Slots of the smaller of the two sectors (the journal's capacity per sector). */
  readonly slotsPerSector: number;
  private readonly sectors: readonly [number, number];
  private readonly slots: readonly [number, number];
  private readonly slotBuf: Uint8Array;
  private readonly readBack: Uint8Array;
  private readonly erased: number;
  /** Index (0/1) of the sector holding the newest valid record. */
  private current: 0 | 1 = 0;
  /** First slot after the last non-erased slot, per sector. */
  private readonly nextFree: [number, number] = [0, 0];
  private last: JournalEntry | null = null;
  /** Set when an operation failed part-way; the next call rescans the flash. */
  private stale = true;
  private erasesDone = 0;
  private appendsDone = 0;

  constructor(
    private readonly flash: Flash,
    firstSector: number = PARAMS_JOURNAL_SECTOR,
  ) {
    const g = flash.geometry;
    const count = sectorCount(g);
    if (!Number.isSafeInteger(firstSector) || firstSector < 0 || firstSector + 2 > count) {
      throw new FlashError(`journal needs sectors ${firstSector} and ${firstSector + 1}; the partition has ${count}`);
    }
    this.sectors = [firstSector, firstSector + 1];
    this.slotSize = roundUp(JOURNAL_RECORD_SIZE, g.programUnit);
    this.slots = [Math.floor(sectorLength(g, firstSector) / this.slotSize), Math.floor(sectorLength(g, firstSector + 1) / this.slotSize)];
    this.slotsPerSector = Math.min(this.slots[0], this.slots[1]);
    if (this.slotsPerSector < 2) {
      throw new FlashError(`sector size ${sectorLength(g, firstSector)} holds fewer than 2 journal slots of ${this.slotSize} bytes`);
    }
    this.erased = g.erasedValue;
    this.slotBuf = new Uint8Array(this.slotSize);
    this.readBack = new Uint8Array(this.slotSize);
    this.scan();
  }

  /** Erases this Journal instance has performed. */
  get erases(): number {
    return this.erasesDone;
  }

  /** Records this Journal instance has appended. */
  get appends(): number {
    return this.appendsDone;
  }

  /** The newest valid record, or null if the journal is empty. */
  latest(): JournalEntry | null {
    if (this.stale) this.scan();
    return this.last;
  }

  /** The newest record if it belongs to `updateId`; a stale journal reads as null. */
  latestFor(updateId: number): JournalEntry | null {
    const e = this.latest();
    return e !== null && e.updateId === updateId ? e : null;
  }

  /** Appends a record with the next sequence number and returns it. */
  append(input: JournalInput): JournalEntry {
    if (this.stale) this.scan();
    let seq = (this.last?.seq ?? 0) + 1;
    if (seq > 0xffffffff) {
      // Only a forged record gets here (2^32 appends). Start over with this record alone: the state it
      // records is the newest, and a power cut before it lands leaves an empty journal, which the
      // restore survives (it re-verifies, or resumes from the flash in place).
      this.format();
      seq = 1;
    }
    const entry: JournalEntry = {
      seq,
      state: input.state,
      chunk: input.chunk,
      aux: input.aux,
      updateId: input.updateId,
    };
    this.slotBuf.fill(this.erased);
    encodeJournalEntry(entry, this.slotBuf);
    this.stale = true; // until the write below is known to be complete
    let sector = this.current;
    let slot = this.nextFree[sector];
    if (slot >= this.slots[sector]) {
      sector = sector === 0 ? 1 : 0;
      this.flash.erase(this.sectors[sector]);
      this.erasesDone++;
      this.nextFree[sector] = 0;
      slot = 0;
    }
    const offset = sectorStart(this.flash.geometry, this.sectors[sector]) + slot * this.slotSize;
    this.flash.program(offset, this.slotBuf);
    this.flash.read(offset, this.readBack);
    for (let i = 0; i < this.slotSize; i++) {
      if (this.readBack[i] !== this.slotBuf[i]) throw new FlashError(`journal record read-back mismatch at ${offset + i}`);
    }
    this.current = sector;
    this.nextFree[sector] = slot + 1;
    this.last = entry;
    this.appendsDone++;
    this.stale = false;
    return entry;
  }

  /**
   * Starts the journal for a new update by appending an 'idle' record. Nothing is
   * erased: the sequence number keeps growing, so records of the previous update can
   * never outrank it, and latestFor(updateId) ignores them.
   */
  reset(updateId: number): JournalEntry {
    return this.append({ state: 'idle', chunk: 0, aux: 0, updateId });
  }

  /** Erases both sectors (factory initialisation; drops all history). */
  format(): void {
    this.stale = true;
    for (const s of this.sectors) {
      this.flash.erase(s);
      this.erasesDone++;
    }
    this.scan();
  }

  /** Every valid record, oldest first (diagnostics and tests). */
  entries(): JournalEntry[] {
    const out: JournalEntry[] = [];
    for (const idx of [0, 1] as const) {
      for (let i = 0; i < this.slots[idx]; i++) {
        const e = decodeJournalEntry(this.readSlot(idx, i));
        if (e !== null) out.push(e);
      }
    }
    return out.sort((a, b) => a.seq - b.seq);
  }

  /** Slot `i` of sector `idx`, read into the slot buffer (slot by slot: RAM stays one slot whatever the sector). */
  private readSlot(idx: 0 | 1, i: number): Uint8Array {
    this.flash.read(sectorStart(this.flash.geometry, this.sectors[idx]) + i * this.slotSize, this.readBack);
    return this.readBack;
  }

  private scan(): void {
    let best: JournalEntry | null = null;
    let bestSector: 0 | 1 = 0;
    for (const idx of [0, 1] as const) {
      let next = 0;
      for (let i = 0; i < this.slots[idx]; i++) {
        const slot = this.readSlot(idx, i);
        let erased = true;
        for (let j = 0; j < this.slotSize; j++) {
          if (slot[j] !== this.erased) {
            erased = false;
            break;
          }
        }
        if (erased) continue;
        next = i + 1;
        const e = decodeJournalEntry(slot);
        if (e !== null && (best === null || e.seq > best.seq)) {
          best = e;
          bestSector = idx;
        }
      }
      this.nextFree[idx] = next;
    }
    this.last = best;
    this.current = bestSector;
    this.stale = false;
  }
}
