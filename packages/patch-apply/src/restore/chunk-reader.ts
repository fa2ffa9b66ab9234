// Decodes chunks for the boot-side restore: one ChunkDecoder (one chunk buffer of RAM) fed from the OTA
// partition, with the source each decode needs plugged in per call (the decoder keeps the reader it was
// built with, so that reader forwards to the current one).
import { ChunkDecoder } from '../chunk-decoder.js';
import { PackageError } from '../package-error.js';
import { recordsOffset, type PackageHeader } from '../package-format.js';
import type { SourceReader } from '../source-reader.js';
import type { Flash } from '../flash/flash.js';

export interface DecodedChunk {
  readonly data: Uint8Array;
  /** False when the output does not match the chunk's CRC-32 (only with `tolerateCrc`). */
  readonly crcOk: boolean;
}

/** Where a decode's source reads land: the reader is told the output buffer position when it is known. */
export type ReadTap = (src: number, len: number, outInChunk: number | null) => void;

export class ChunkReader {
  private current: SourceReader | null = null;
  private readonly decoder: ChunkDecoder;
  private decodes = 0;

  constructor(
    private readonly p: PackageHeader,
    private readonly ota: Flash,
    private readonly packageOffset: number,
  ) {
    const self = this;
    this.decoder = new ChunkDecoder(p, {
      read(offset, dst, dstOffset, length) {
        self.current!.read(offset, dst, dstOffset, length);
      },
    });
  }

  /** Chunk decodes so far (the restore decodes some chunks more than once). */
  get decodeCount(): number {
    return this.decodes;
  }

  /** The decoder's output buffer (reads into it carry output positions). */
  get output(): Uint8Array {
    return this.decoder.output;
  }

  /**
   * Decodes chunk `i` from `source`. A record that fails to decode throws PackageError; a CRC mismatch
   * does too unless `tolerateCrc`, when the output is returned with crcOk false (a decode whose source
   * is known to be partly stale, or that only wants to see which source bytes are read).
   */
  decode(i: number, source: SourceReader, tolerateCrc = false): DecodedChunk {
    const entry = this.p.chunks[i];
    const at = this.packageOffset + recordsOffset(this.p) + entry.recordOffset;
    this.current = source;
    this.decodes++;
    try {
      const data = this.decoder.decodeChunk(i, entry, (off, dst, dstOff, len) => this.ota.read(at + off, dst, dstOff, len));
      return { data, crcOk: true };
    } catch (e) {
      // The CRC is checked once the whole chunk is out, so the output buffer holds the full chunk.
      if (tolerateCrc && e instanceof PackageError && e.code === 'chunk-crc') return { data: this.decoder.output.subarray(0, this.decoder.length), crcOk: false };
      throw e;
    } finally {
      this.current = null;
    }
  }

  /** A source that reports every read to `tap` (with the output position when the read fills the output buffer). */
  tapped(inner: SourceReader, tap: ReadTap): SourceReader {
    const out = this.decoder.output;
    return {
      read(offset, dst, dstOffset, length) {
        tap(offset, length, dst === out ? dstOffset : null);
        inner.read(offset, dst, dstOffset, length);
      },
    };
  }
}

/** A source of zeros: which bytes a chunk reads does not depend on what they hold. */
export const zeroSource: SourceReader = {
  read(_offset, dst, dstOffset, length) {
    dst.fill(0, dstOffset, dstOffset + length);
  },
};
