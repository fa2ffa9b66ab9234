// The source a transformed chunk's commands read: OLD as the package predicts NEW (its codec's predict),
// one block at a time through a block-sized cache, so the command loop itself is unchanged.
import type { SourceReader } from '../source-reader.js';
import { copyBytes } from '../source-reader.js';
import type { TransformCodec } from './codecs.js';
import type { Prediction } from './label-map.js';
import { TRANSFORM_BLOCK } from './block.js';
import { XTENSA_SCRATCH_BYTES } from './xtensa.js';

/** RAM of the view beside the map: the cached block, and the prediction's scratch. */
export const PREDICTED_SOURCE_BYTES = TRANSFORM_BLOCK + XTENSA_SCRATCH_BYTES;

export class PredictedSource implements SourceReader {
  private readonly block = new Uint8Array(TRANSFORM_BLOCK);
  /** Start of the cached block, -1 when none. */
  private cached = -1;
  private cachedLength = 0;
  /** Below this the window holds restored NEW bytes (in place), which are read as they are. */
  private boundary = 0;

  constructor(
    private readonly raw: SourceReader,
    private readonly codec: TransformCodec,
    private readonly prediction: Prediction,
    /** Bytes of OLD: blocks end there. */
    private readonly oldSize: number,
  ) {}

  /**
   * Starts a chunk whose window switches to OLD at `boundary` (a block multiple). The cache is
   * dropped: between chunks an in-place restore rewrites the region below the new boundary.
   */
  reset(boundary: number): void {
    this.boundary = boundary;
    this.cached = -1;
  }

  read(offset: number, dst: Uint8Array, dstOffset: number, length: number): void {
    // Most reads are a few bytes inside the block read last.
    const cached = this.cached;
    if (cached >= 0 && offset >= cached && offset + length <= cached + this.cachedLength) {
      copyBytes(this.block, offset - cached, dst, dstOffset, length);
      return;
    }
    const oldSize = this.oldSize;
    while (length > 0) {
      // Restored NEW bytes below the boundary (a block multiple), and anything past OLD, are not OLD:
      // they are read as they are.
      if (offset < this.boundary || offset >= oldSize) {
        const stop = offset < this.boundary ? Math.min(offset + length, this.boundary) : offset + length;
        this.raw.read(offset, dst, dstOffset, stop - offset);
        dstOffset += stop - offset;
        length -= stop - offset;
        offset = stop;
        continue;
      }
      const start = offset - (offset % TRANSFORM_BLOCK);
      if (start !== this.cached) this.load(start, Math.min(TRANSFORM_BLOCK, oldSize - start));
      const n = Math.min(length, this.cached + this.cachedLength - offset);
      copyBytes(this.block, offset - start, dst, dstOffset, n);
      offset += n;
      dstOffset += n;
      length -= n;
    }
  }

  private load(start: number, length: number): void {
    // Mark the cache empty first: a failing read must not leave a half-loaded block looking valid.
    this.cached = -1;
    this.raw.read(start, this.block, 0, length);
    this.codec.predict(this.block, length, start, this.prediction);
    this.cached = start;
    this.cachedLength = length;
  }
}
