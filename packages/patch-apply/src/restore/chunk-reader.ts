// Decodes chunks for the boot-side restore: one ChunkDecoder (one chunk buffer of RAM) fed from the OTA
// partition, with the source each decode needs plugged in per call (the decoder keeps the reader it was
// built with, so that reader forwards to the current one).
import { ChunkDecoder } from '../chunk-decoder.js';
import { PackageError } from '../package-error.js';
import { recordsOffset, windowBoundary, type PackageHeader } from '../package-format.js';
import type { SourceReader } from '../source-reader.js';
import type { Flash } from '../flash/flash.js';
import type { Dependence } from '../transform/block.js';
import { CODECS } from '../transform/codecs.js';

export interface DecodedChunk {
  readonly data: Uint8Array;
  /** False when the output does not match the chunk's CRC-32 (only with `tolerateCrc`). */
  readonly crcOk: boolean;
}

/**
 * Where a decode's source reads land: old bytes [src, src + len), with the output buffer position they
 * fill when it is known (output byte outInChunk + i comes from source byte src + i). `dep` null: each
 * output byte depends on that one source byte only; otherwise on the bytes `dep` gives (a transformed
 * chunk: the prediction rewrites a source byte from its neighbours in its block).
 */
export type ReadTap = (src: number, len: number, outInChunk: number | null, dep: Dependence | null) => void;

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
   * Decodes chunk `i` from `source`; `tap`, when given, sees every old-byte read (see ReadTap). A record
   * that fails to decode throws PackageError; a CRC mismatch does too unless `tolerateCrc`, when the output
   * is returned with crcOk false (a decode whose source is known to be partly stale, or that only wants to
   * see which source bytes are read).
   */
  decode(i: number, source: SourceReader, tolerateCrc = false, tap: ReadTap | null = null): DecodedChunk {
    const entry = this.p.chunks[i];
    const at = this.packageOffset + recordsOffset(this.p) + entry.recordOffset;
    const decoder = this.decoder;
    const out = decoder.output;
    this.current = tap === null ? source : this.tapped(source, tap);
    // A transformed chunk's reads are seen at the window, before the prediction (which reads whole blocks).
    decoder.windowTap = tap === null ? null : this.windowTap(i, tap);
    this.decodes++;
    try {
      const data = decoder.decodeChunk(i, entry, (off, dst, dstOff, len) => this.ota.read(at + off, dst, dstOff, len));
      return { data, crcOk: true };
    } catch (e) {
      // The CRC is checked once the whole chunk is out, so the output buffer holds the full chunk.
      if (tolerateCrc && e instanceof PackageError && e.code === 'chunk-crc') return { data: out.subarray(0, decoder.length), crcOk: false };
      throw e;
    } finally {
      this.current = null;
      decoder.windowTap = null;
    }
  }

  /** The source as the tap sees it: every read of an untransformed chunk, one byte for one byte. */
  private tapped(inner: SourceReader, tap: ReadTap): SourceReader {
    const decoder = this.decoder;
    const out = decoder.output;
    return {
      read(offset, dst, dstOffset, length) {
        if (!decoder.chunkTransformed) tap(offset, length, dst === out ? dstOffset : null, null);
        inner.read(offset, dst, dstOffset, length);
      },
    };
  }

  /**
   * A transformed chunk's window reads: restored NEW below the chunk's window boundary and bytes past OLD
   * are read as they are; the rest is predicted, each byte from the bytes its codec's `dependence` names.
   */
  private windowTap(i: number, tap: ReadTap): ((offset: number, dst: Uint8Array, dstOffset: number, length: number) => void) | null {
    const t = this.p.transform;
    if (t === null) return null;
    const dep = CODECS[t.kind].dependence;
    const out = this.decoder.output;
    const boundary = windowBoundary(this.p, i);
    const oldSize = this.p.oldSize;
    return (offset, dst, dstOffset, length) => {
      const at = dst === out ? dstOffset : null;
      const end = offset + length;
      const a = Math.min(Math.max(offset, boundary), end);
      const b = Math.max(a, Math.min(end, oldSize));
      if (offset < a) tap(offset, a - offset, at, null);
      if (a < b) tap(a, b - a, at === null ? null : at + (a - offset), dep);
      if (b < end) tap(b, end - b, at === null ? null : at + (b - offset), null);
    };
  }
}

/** A source of zeros: which bytes a chunk reads does not depend on what they hold. */
export const zeroSource: SourceReader = {
  read(_offset, dst, dstOffset, length) {
    dst.fill(0, dstOffset, dstOffset + length);
  },
};
