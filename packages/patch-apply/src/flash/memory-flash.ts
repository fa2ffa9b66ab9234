import {
  checkProgram,
  checkRead,
  checkSector,
  FlashError,
  makeGeometry,
  programInto,
  sectorLength,
  sectorStart,
  type Flash,
  type FlashGeometry,
  type GeometryInput,
  type OverwriteMode,
} from './flash.js';

export interface MemoryFlashOptions {
  /** Initial contents (copied); must be exactly `size` bytes. Default: all erased. */
  contents?: Uint8Array;
  onOverwrite?: OverwriteMode;
}

/** A flash held in a Uint8Array. */
export class MemoryFlash implements Flash {
  readonly geometry: FlashGeometry;
  readonly onOverwrite: OverwriteMode;
  /**
   * The backing store. Exposed for test tooling (bit flips, snapshots); writing to it
   * bypasses flash semantics on purpose.
   */
  readonly raw: Uint8Array;

  constructor(geometry: GeometryInput, options: MemoryFlashOptions = {}) {
    this.geometry = makeGeometry(geometry);
    this.onOverwrite = options.onOverwrite ?? 'error';
    this.raw = new Uint8Array(this.geometry.size);
    if (options.contents !== undefined) {
      if (options.contents.length !== this.geometry.size) {
        throw new FlashError(`contents is ${options.contents.length} bytes, flash size is ${this.geometry.size}`);
      }
      this.raw.set(options.contents);
    } else {
      this.raw.fill(this.geometry.erasedValue);
    }
  }

  read(offset: number, dst: Uint8Array, dstOffset?: number, length?: number): void {
    const len = checkRead(this.geometry, offset, dst, dstOffset, length);
    dst.set(this.raw.subarray(offset, offset + len), dstOffset ?? 0);
  }

  program(offset: number, data: Uint8Array): void {
    checkProgram(this.geometry, offset, data.length);
    programInto(this.raw.subarray(offset, offset + data.length), data, this.onOverwrite, offset, this.geometry);
  }

  erase(sector: number): void {
    checkSector(this.geometry, sector);
    const start = sectorStart(this.geometry, sector);
    this.raw.fill(this.geometry.erasedValue, start, start + sectorLength(this.geometry, sector));
  }

  /** A copy of the whole device. */
  snapshot(): Uint8Array {
    return this.raw.slice();
  }
}
