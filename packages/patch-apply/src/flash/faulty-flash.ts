import {
  checkProgram,
  checkRead,
  checkSector,
  ERASED_BYTE,
  FlashError,
  PowerCutError,
  sectorCount,
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
 *             a program clears only some of the bits it should, an erase sets only
 *             some bits back to 1), modelling cells left at intermediate charge.
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
  }

  program(offset: number, data: Uint8Array): void {
    this.ensureUp();
    checkProgram(this.geometry, offset, data.length);
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
    const size = this.geometry.sectorSize;
    if (this.ops === this.cutAt) {
      this.tornErase(sector);
      this.count('erase', sector);
      this.goDown({ op: this.ops - 1, kind: 'erase', offset: sector * size, length: size });
    }
    this.inner.erase(sector);
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

  /** Applies the part of a program that made it before the cut. */
  private tornProgram(offset: number, data: Uint8Array): void {
    const n = data.length;
    const old = new Uint8Array(n);
    this.inner.read(offset, old, 0, n);
    if (this.onOverwrite === 'error') {
      // The real device would have rejected the whole call: do the same; the call is
      // not counted, so the cut stays armed for the next operation.
      for (let i = 0; i < n; i++) {
        if ((old[i] & data[i]) !== data[i]) {
          throw new FlashError(`program: byte at ${offset + i} is not erased (strict mode)`);
        }
      }
    }
    if (this.tear === 'none' || n === 0) return;
    const torn = old.slice();
    switch (this.tear) {
      case 'prefix': {
        const pu = this.geometry.programUnit;
        const upto = this.prng.nextInt(n / pu + 1) * pu;
        for (let i = 0; i < upto; i++) torn[i] = old[i] & data[i];
        break;
      }
      case 'random':
        for (let i = 0; i < n; i++) if (this.prng.nextBool()) torn[i] = old[i] & data[i];
        break;
      case 'bits':
        // A bit ends cleared if it was already 0, or if it should be cleared and the
        // (random) transition happened.
        for (let i = 0; i < n; i++) torn[i] = old[i] & (data[i] | (this.prng.nextU32() & 0xff));
        break;
    }
    this.inner.program(offset, torn);
  }

  /** Leaves the sector partly erased: erase it for real, then re-program the survivors. */
  private tornErase(sector: number): void {
    if (this.tear === 'none') return;
    const size = this.geometry.sectorSize;
    const start = sector * size;
    const torn = new Uint8Array(size);
    this.inner.read(start, torn, 0, size);
    switch (this.tear) {
      case 'prefix': {
        const pu = this.geometry.programUnit;
        const upto = this.prng.nextInt(size / pu + 1) * pu;
        torn.fill(ERASED_BYTE, 0, upto);
        break;
      }
      case 'random':
        for (let i = 0; i < size; i++) if (this.prng.nextBool()) torn[i] = ERASED_BYTE;
        break;
      case 'bits':
        for (let i = 0; i < size; i++) torn[i] |= this.prng.nextU32() & 0xff;
        break;
    }
    this.inner.erase(sector);
    this.inner.program(start, torn);
  }
}
