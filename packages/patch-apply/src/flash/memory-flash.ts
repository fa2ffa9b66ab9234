import {
  checkProgram,
  checkRead,
  checkSector,
  ERASED_BYTE,
  FlashError,
  makeGeometry,
  norProgramInto,
  type Flash,
  type FlashGeometry,
  type OverwriteMode,
} from './flash.js';

export interface MemoryFlashOptions {
  /** Initial contents (copied); must be exactly `size` bytes. Default: all 0xFF. */
  contents?: Uint8Array;
  onOverwrite?: OverwriteMode;
}

/** A NOR flash held in a Uint8Array. */
export class MemoryFlash implements Flash {
  readonly geometry: FlashGeometry;
  readonly onOverwrite: OverwriteMode;
  /**
   * The backing store. Exposed for test tooling (bit flips, snapshots); writing to it
   * bypasses NOR semantics on purpose.
   */
  readonly raw: Uint8Array;

  constructor(geometry: { size: number; sectorSize?: number; programUnit?: number }, options: MemoryFlashOptions = {}) {
    this.geometry = makeGeometry(geometry);
    this.onOverwrite = options.onOverwrite ?? 'error';
    this.raw = new Uint8Array(this.geometry.size);
    if (options.contents !== undefined) {
      if (options.contents.length !== this.geometry.size) {
        throw new FlashError(`contents is ${options.contents.length} bytes, flash size is ${this.geometry.size}`);
      }
      this.raw.set(options.contents);
    } else {
      this.raw.fill(ERASED_BYTE);
    }
  }

  read(offset: number, dst: Uint8Array, dstOffset?: number, length?: number): void {
    const len = checkRead(this.geometry, offset, dst, dstOffset, length);
    dst.set(this.raw.subarray(offset, offset + len), dstOffset ?? 0);
  }

  program(offset: number, data: Uint8Array): void {
    checkProgram(this.geometry, offset, data.length);
    norProgramInto(this.raw.subarray(offset, offset + data.length), data, this.onOverwrite, offset);
  }

  erase(sector: number): void {
    checkSector(this.geometry, sector);
    const start = sector * this.geometry.sectorSize;
    this.raw.fill(ERASED_BYTE, start, start + this.geometry.sectorSize);
  }

  /** A copy of the whole device. */
  snapshot(): Uint8Array {
    return this.raw.slice();
  }
}
