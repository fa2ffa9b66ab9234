import * as fs from 'node:fs';
import {
  checkProgram,
  checkRead,
  checkSector,
  FlashError,
  largestSector,
  makeGeometry,
  programInto,
  sectorLength,
  sectorStart,
  type Flash,
  type FlashGeometry,
  type GeometryInput,
  type OverwriteMode,
} from './flash.js';

export interface FileFlashOptions {
  onOverwrite?: OverwriteMode;
  /** fsync after every program/erase (slow; for images shared with another process). */
  fsync?: boolean;
}

/**
 * A flash backed by an image file (the format a host-side simulator or a programmer dump
 * uses: raw bytes, erased bytes hold the geometry's erased value). All I/O is synchronous.
 */
export class FileFlash implements Flash {
  readonly geometry: FlashGeometry;
  readonly onOverwrite: OverwriteMode;
  readonly path: string;
  private fd: number | null;
  private readonly fsync: boolean;
  private readonly erasedSector: Uint8Array;
  private scratch: Uint8Array;

  private constructor(path: string, fd: number, geometry: FlashGeometry, options: FileFlashOptions) {
    this.path = path;
    this.fd = fd;
    this.geometry = geometry;
    this.onOverwrite = options.onOverwrite ?? 'error';
    this.fsync = options.fsync ?? false;
    this.erasedSector = new Uint8Array(largestSector(geometry)).fill(geometry.erasedValue);
    this.scratch = new Uint8Array(4096);
  }

  /**
   * Opens an existing image (its size must equal `geometry.size`) or creates one filled
   * with the erased value.
   */
  static open(
    path: string,
    geometry: GeometryInput,
    options: FileFlashOptions = {},
  ): FileFlash {
    const g = makeGeometry(geometry);
    let fd: number;
    let created = false;
    try {
      fd = fs.openSync(path, 'r+');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      fd = fs.openSync(path, 'wx+');
      created = true;
    }
    const flash = new FileFlash(path, fd, g, options);
    try {
      if (created) {
        for (let off = 0; off < g.size; off += flash.erasedSector.length) writeFully(fd, flash.erasedSector.subarray(0, Math.min(flash.erasedSector.length, g.size - off)), off);
        fs.fsyncSync(fd);
      } else {
        const actual = fs.fstatSync(fd).size;
        if (actual !== g.size) throw new FlashError(`flash image ${path} is ${actual} bytes, expected ${g.size}`);
      }
    } catch (e) {
      flash.close();
      throw e;
    }
    return flash;
  }

  get isOpen(): boolean {
    return this.fd !== null;
  }

  close(): void {
    if (this.fd !== null) {
      const fd = this.fd;
      this.fd = null;
      fs.closeSync(fd);
    }
  }

  read(offset: number, dst: Uint8Array, dstOffset?: number, length?: number): void {
    const len = checkRead(this.geometry, offset, dst, dstOffset, length);
    readFully(this.handle(), dst.subarray(dstOffset ?? 0, (dstOffset ?? 0) + len), offset);
  }

  program(offset: number, data: Uint8Array): void {
    checkProgram(this.geometry, offset, data.length);
    const fd = this.handle();
    if (this.scratch.length < data.length) this.scratch = new Uint8Array(data.length);
    const cur = this.scratch.subarray(0, data.length);
    readFully(fd, cur, offset);
    programInto(cur, data, this.onOverwrite, offset, this.geometry);
    writeFully(fd, cur, offset);
    if (this.fsync) fs.fsyncSync(fd);
  }

  erase(sector: number): void {
    checkSector(this.geometry, sector);
    const fd = this.handle();
    writeFully(fd, this.erasedSector.subarray(0, sectorLength(this.geometry, sector)), sectorStart(this.geometry, sector));
    if (this.fsync) fs.fsyncSync(fd);
  }

  private handle(): number {
    if (this.fd === null) throw new FlashError(`flash image ${this.path} is closed`);
    return this.fd;
  }
}

function readFully(fd: number, dst: Uint8Array, position: number): void {
  let done = 0;
  while (done < dst.length) {
    const n = fs.readSync(fd, dst, done, dst.length - done, position + done);
    if (n === 0) throw new FlashError(`flash image ended early at ${position + done}`);
    done += n;
  }
}

function writeFully(fd: number, src: Uint8Array, position: number): void {
  let done = 0;
  while (done < src.length) done += fs.writeSync(fd, src, done, src.length - done, position + done);
}
