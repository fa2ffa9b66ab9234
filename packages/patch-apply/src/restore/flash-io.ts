// Flash reads and writes of the restore through one I/O block of RAM.
import { crc32 } from '../crc32.js';
import { eraseRange, sectorLength, sectorStart, type Flash } from '../flash/flash.js';

export const IO_BLOCK = 4096;

export class FlashIo {
  readonly block = new Uint8Array(IO_BLOCK);
  private tail: Uint8Array | null = null;

  crcOf(view: Flash, offset: number, length: number): number {
    let crc = 0; // the CRC of nothing, which a running CRC continues from
    for (let off = 0; off < length; off += IO_BLOCK) {
      const k = Math.min(IO_BLOCK, length - off);
      view.read(offset + off, this.block, 0, k);
      crc = crc32(this.block.subarray(0, k), crc);
    }
    return crc;
  }

  equals(view: Flash, offset: number, data: Uint8Array): boolean {
    for (let off = 0; off < data.length; off += IO_BLOCK) {
      const n = Math.min(IO_BLOCK, data.length - off);
      view.read(offset + off, this.block, 0, n);
      for (let k = 0; k < n; k++) if (this.block[k] !== data[off + k]) return false;
    }
    return true;
  }

  /** Programs `data` at `offset` (a program-unit multiple) in calls of at most an I/O block, padding the last unit with erased bytes. */
  program(view: Flash, offset: number, data: Uint8Array): void {
    const g = view.geometry;
    const unit = g.programUnit;
    const whole = data.length - (data.length % unit);
    for (let off = 0; off < whole; off += IO_BLOCK) view.program(offset + off, data.subarray(off, Math.min(whole, off + IO_BLOCK)));
    if (whole < data.length) {
      if (this.tail === null || this.tail.length !== unit) this.tail = new Uint8Array(unit);
      this.tail.fill(g.erasedValue);
      this.tail.set(data.subarray(whole));
      view.program(offset + whole, this.tail);
    }
  }

  /** Erases sectors first..last (inclusive) of `view`. */
  eraseSectors(view: Flash, first: number, last: number): void {
    const g = view.geometry;
    eraseRange(view, sectorStart(g, first), sectorStart(g, last) + sectorLength(g, last) - sectorStart(g, first));
  }
}
