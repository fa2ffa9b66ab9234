import {
  checkProgram,
  checkRead,
  checkSector,
  FlashError,
  PowerCutError,
  sectorCount,
  sectorLength,
  sectorStart,
  type Flash,
  type FlashGeometry,
  type OverwriteMode,
} from './flash.js';
import { Prng } from './prng.js';

/**
 * How the operation in flight at the power cut is left:
 *  'none'   - not applied at all (the cut landed just before it);
 *  'prefix' - the first k program units were done, k uniform in [0, units];
 *  'random' - a random subset of bytes was done (each byte independently);
 *  'bits'   - every bit transition happened or not independently (the nastiest:
 *             a program moves only some of the bits it should, an erase returns only
 *             some bits to the erased value), modelling cells left at intermediate charge.
 * On program-once (ECC) flash the unit is what tears: 'prefix' leaves the units before
 * the k-th done, the k-th undefined and the rest untouched; 'random' leaves each unit done,
 * untouched or undefined; 'bits' leaves every unit of the operation undefined. An undefined
 * unit reads back as fresh random bytes on every read (its cells and ECC disagree) and
 * refuses any program until its sector is erased, like an unerased unit.
 */
export type TearMode = 'none' | 'prefix' | 'random' | 'bits';

export type FlashOpKind = 'read' | 'program' | 'erase';

export interface FaultyFlashOptions {
  /**
   * 0-based index of the counted operation to cut, or 'never' (the default) to only
   * count, e.g. to measure how many operations a clean run takes.
   */
  cutAt?: number | 'never';
  /** Default 'random'. */
  tear?: TearMode;
  /** Seed of the tearing PRNG; same seed + same op sequence = same torn state. */
  seed?: number;
  /**
   * Count (and allow cutting) reads too. Default false: only program and erase, the
   * operations that change the device, are counted, so op indices stay stable when
   * the code under test adds or removes reads.
   */
  countReads?: boolean;
}

export interface CutRecord {
  /** Index of the cut operation in the counted sequence. */
  readonly op: number;
  readonly kind: FlashOpKind;
  /** Byte offset of the operation (sector start for erases). */
  readonly offset: number;
  readonly length: number;
}

/**
 * Power-cut simulator wrapping any Flash.
 *
 * Counted operations are numbered from 0 over the wrapper's lifetime (reboots do not
 * reset the numbering). When the op numbered `cutAt` arrives it is applied torn per
 * `tear`, the device goes down and the call throws PowerCutError; from then on every
 * call (reads included) throws PowerCutError until reboot(). The cut is one-shot:
 * after it fires `cutAt` becomes 'never' (use scheduleCut() to arm another).
 *
 * Counters include the cut operation (it reached the device and wore it). Calls that
 * fail validation (bounds, alignment, strict overwrite) are not counted.
 */
export class FaultyFlash implements Flash {
  readonly geometry: FlashGeometry;
  readonly onOverwrite: OverwriteMode | undefined;
  /** Counted operations issued so far (including a cut one). */
  ops = 0;
  programs = 0;
  bytesProgrammed = 0;
  /** Reads performed (counted or not). */
  reads = 0;
  /** Erase count per sector, for a wear report. */
  readonly erases: Uint32Array;
  cutAt: number | 'never';
  readonly tear: TearMode;
  readonly countReads: boolean;
  /** The most recent cut, if any. */
  lastCut: CutRecord | null = null;
  private down = false;
  private readonly prng: Prng;
  /** Program-once flash: start offsets of units a cut left undefined. */
  private readonly undefinedUnits = new Set<number>();

  constructor(
    readonly inner: Flash,
    options: FaultyFlashOptions = {},
  ) {
    this.geometry = inner.geometry;
    this.onOverwrite = inner.onOverwrite;
    this.erases = new Uint32Array(sectorCount(inner.geometry));
    const cutAt = options.cutAt ?? 'never';
    if (cutAt !== 'never' && !(Number.isSafeInteger(cutAt) && cutAt >= 0)) {
      throw new FlashError(`cutAt must be a non-negative integer or 'never', got ${cutAt}`);
    }
    this.cutAt = cutAt;
    this.tear = options.tear ?? 'random';
    this.countReads = options.countReads ?? false;
    this.prng = new Prng(options.seed ?? 1);
  }

  /** Units a cut left undefined (program-once flash), for tests. */
  get undefinedUnitCount(): number {
    return this.undefinedUnits.size;
  }

  get isDown(): boolean {
    return this.down;
  }

  get totalErases(): number {
    let n = 0;
    for (const e of this.erases) n += e;
    return n;
  }

  /** Power comes back: operations work again. Counters and the op numbering persist. */
  reboot(): void {
    this.down = false;
  }

  /** Cut the counted operation `afterOps` operations from now (0 = the next one). */
  scheduleCut(afterOps: number): void {
    if (!Number.isSafeInteger(afterOps) || afterOps < 0) throw new FlashError(`scheduleCut(${afterOps})`);
    this.cutAt = this.ops + afterOps;
  }

  disarm(): void {
    this.cutAt = 'never';
  }

  read(offset: number, dst: Uint8Array, dstOffset?: number, length?: number): void {
    this.ensureUp();
    const len = checkRead(this.geometry, offset, dst, dstOffset, length);
    if (this.countReads) {
      const idx = this.ops++;
      this.reads++;
      if (idx === this.cutAt) this.goDown({ op: idx, kind: 'read', offset, length: len });
    } else {
      this.reads++;
    }
    this.inner.read(offset, dst, dstOffset, len);
    if (this.undefinedUnits.size > 0) this.scrambleUndefined(offset, dst, dstOffset ?? 0, len);
  }

  program(offset: number, data: Uint8Array): void {
    this.ensureUp();
    checkProgram(this.geometry, offset, data.length);
    if (this.undefinedUnits.size > 0) {
      const unit = this.geometry.programUnit;
      for (let u = offset; u < offset + data.length; u += unit) {
        if (this.undefinedUnits.has(u)) throw new FlashError(`program: the ${unit}-byte unit at ${u} was torn by a power cut and is not erased (PROGERR)`);
      }
    }
    if (this.ops === this.cutAt) {
      this.tornProgram(offset, data);
      this.count('program', data.length);
      this.goDown({ op: this.ops - 1, kind: 'program', offset, length: data.length });
    }
    this.inner.program(offset, data);
    this.count('program', data.length);
  }

  erase(sector: number): void {
    this.ensureUp();
    checkSector(this.geometry, sector);
    const start = sectorStart(this.geometry, sector);
    const size = sectorLength(this.geometry, sector);
    if (this.ops === this.cutAt) {
      this.tornErase(sector, start, size);
      this.count('erase', sector);
      this.goDown({ op: this.ops - 1, kind: 'erase', offset: start, length: size });
    }
    this.inner.erase(sector);
    this.forgetUndefined(start, size);
    this.count('erase', sector);
  }

  private count(kind: 'program' | 'erase', arg: number): void {
    this.ops++;
    if (kind === 'program') {
      this.programs++;
      this.bytesProgrammed += arg;
    } else {
      this.erases[arg]++;
    }
  }

  private ensureUp(): void {
    if (this.down) throw new PowerCutError('flash is powered down (call reboot())');
  }

  private goDown(cut: CutRecord): never {
    this.down = true;
    this.cutAt = 'never';
    this.lastCut = cut;
    throw new PowerCutError(`power cut during ${cut.kind} #${cut.op} at ${cut.offset} (+${cut.length})`);
  }

  /** Overwrites the bytes of undefined units in a read with random bytes (fresh on every read). */
  private scrambleUndefined(offset: number, dst: Uint8Array, dstOffset: number, len: number): void {
    const unit = this.geometry.programUnit;
    for (let u = offset - (offset % unit); u < offset + len; u += unit) {
      if (!this.undefinedUnits.has(u)) continue;
      for (let i = Math.max(u, offset); i < Math.min(u + unit, offset + len); i++) dst[dstOffset + i - offset] = this.prng.nextU32() & 0xff;
    }
  }

  private forgetUndefined(start: number, size: number): void {
    if (this.undefinedUnits.size === 0) return;
    for (const u of [...this.undefinedUnits]) if (u >= start && u < start + size) this.undefinedUnits.delete(u);
  }

  /** Random bytes for a unit left undefined, programmed into the inner flash so it no longer reads erased there. */
  private randomUnit(torn: Uint8Array, at: number, unit: number): void {
    for (let i = at; i < at + unit; i++) torn[i] = this.prng.nextU32() & 0xff;
    // The inner device must see the unit as programmed: all-erased random bytes would let it accept a second program.
    if (torn.subarray(at, at + unit).every((b) => b === this.geometry.erasedValue)) torn[at] ^= 0x01;
  }

  /** Applies the part of a program that made it before the cut. */
  private tornProgram(offset: number, data: Uint8Array): void {
    const n = data.length;
    const g = this.geometry;
    const old = new Uint8Array(n);
    this.inner.read(offset, old, 0, n);
    const ones = g.erasedValue === 0xff;
    const merge = (a: number, b: number) => (ones ? a & b : a | b);
    if (this.onOverwrite === 'error' || this.onOverwrite === 'program-once') {
      // The real device would have rejected the whole call: do the same; the call is
      // not counted, so the cut stays armed for the next operation.
      for (let i = 0; i < n; i++) {
        const bad = this.onOverwrite === 'program-once' ? old[i] !== g.erasedValue : merge(old[i], data[i]) !== data[i];
        if (bad) throw new FlashError(`program: byte at ${offset + i} is not erased (${this.onOverwrite} mode)`);
      }
    }
    if (this.tear === 'none' || n === 0) return;
    if (this.onOverwrite === 'program-once') return this.tornProgramOnce(offset, data, old);
    const torn = old.slice();
    switch (this.tear) {
      case 'prefix': {
        const pu = g.programUnit;
        const upto = this.prng.nextInt(n / pu + 1) * pu;
        for (let i = 0; i < upto; i++) torn[i] = merge(old[i], data[i]);
        break;
      }
      case 'random':
        for (let i = 0; i < n; i++) if (this.prng.nextBool()) torn[i] = merge(old[i], data[i]);
        break;
      case 'bits':
        // A bit ends programmed if it already was, or if it should be and the (random) transition happened.
        for (let i = 0; i < n; i++) {
          const r = this.prng.nextU32() & 0xff;
          torn[i] = ones ? old[i] & (data[i] | r) : old[i] | (data[i] & r);
        }
        break;
    }
    this.inner.program(offset, torn);
  }

  /** Program-once: units done, untouched (erased) or undefined, per the tear mode. */
  private tornProgramOnce(offset: number, data: Uint8Array, old: Uint8Array): void {
    const unit = this.geometry.programUnit;
    const units = data.length / unit;
    const torn = old.slice();
    const fate = (k: number): 'done' | 'erased' | 'undefined' => {
      switch (this.tear) {
        case 'prefix':
          return k < cutUnit ? 'done' : k === cutUnit ? 'undefined' : 'erased';
        case 'random':
          return (['done', 'erased', 'undefined'] as const)[this.prng.nextInt(3)];
        default:
          return 'undefined';
      }
    };
    const cutUnit = this.tear === 'prefix' ? this.prng.nextInt(units + 1) : 0;
    const undefinedAt: number[] = [];
    for (let k = 0; k < units; k++) {
      const at = k * unit;
      const f = fate(k);
      if (f === 'done') torn.set(data.subarray(at, at + unit), at);
      else if (f === 'undefined') {
        this.randomUnit(torn, at, unit);
        undefinedAt.push(offset + at);
      }
    }
    // Program only the units that changed: an all-erased program would still count as one on real ECC flash.
    for (let k = 0; k < units; k++) {
      const at = k * unit;
      if (torn.subarray(at, at + unit).some((b) => b !== this.geometry.erasedValue)) this.inner.program(offset + at, torn.subarray(at, at + unit));
    }
    for (const u of undefinedAt) this.undefinedUnits.add(u);
  }

  /** Leaves the sector partly erased: erase it for real, then re-program the survivors. */
  private tornErase(sector: number, start: number, size: number): void {
    if (this.tear === 'none') return;
    const g = this.geometry;
    const erased = g.erasedValue;
    const torn = new Uint8Array(size);
    this.inner.read(start, torn, 0, size);
    if (this.onOverwrite === 'program-once') return this.tornEraseOnce(sector, start, torn);
    switch (this.tear) {
      case 'prefix': {
        const pu = g.programUnit;
        const upto = this.prng.nextInt(size / pu + 1) * pu;
        torn.fill(erased, 0, upto);
        break;
      }
      case 'random':
        for (let i = 0; i < size; i++) if (this.prng.nextBool()) torn[i] = erased;
        break;
      case 'bits':
        for (let i = 0; i < size; i++) {
          const r = this.prng.nextU32() & 0xff;
          torn[i] = erased === 0xff ? torn[i] | r : torn[i] & ~r & 0xff;
        }
        break;
    }
    this.inner.erase(sector);
    this.inner.program(start, torn);
  }

  /** Program-once: each unit erased, left as it was, or undefined, per the tear mode. */
  private tornEraseOnce(sector: number, start: number, torn: Uint8Array): void {
    const unit = this.geometry.programUnit;
    const units = torn.length / unit;
    const cutUnit = this.tear === 'prefix' ? this.prng.nextInt(units + 1) : 0;
    const keptUndefined: number[] = [];
    const newUndefined: number[] = [];
    for (let k = 0; k < units; k++) {
      const at = k * unit;
      const f =
        this.tear === 'prefix'
          ? k < cutUnit ? 'erased' : k === cutUnit ? 'undefined' : 'old'
          : this.tear === 'random'
            ? (['erased', 'old', 'undefined'] as const)[this.prng.nextInt(3)]
            : 'undefined';
      if (f === 'erased') torn.fill(this.geometry.erasedValue, at, at + unit);
      else if (f === 'undefined') {
        this.randomUnit(torn, at, unit);
        newUndefined.push(start + at);
      } else if (this.undefinedUnits.has(start + at)) keptUndefined.push(start + at);
    }
    this.inner.erase(sector);
    this.forgetUndefined(start, torn.length);
    for (let k = 0; k < units; k++) {
      const at = k * unit;
      if (torn.subarray(at, at + unit).some((b) => b !== this.geometry.erasedValue)) this.inner.program(start + at, torn.subarray(at, at + unit));
    }
    for (const u of [...keptUndefined, ...newUndefined]) this.undefinedUnits.add(u);
  }
}
