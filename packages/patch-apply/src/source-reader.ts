/**
 * Where a chunk's source bytes come from: the old image (ab) or the partition being restored (inplace).
 * Synchronous on purpose: the boot-side restore is a deterministic state machine over flash reads.
 */
export interface SourceReader {
  /** Fills dst[dstOffset, dstOffset+length) with source bytes [offset, offset+length). */
  read(offset: number, dst: Uint8Array, dstOffset: number, length: number): void;
}

/** A source held in memory (host-side apply, tests). */
export function memorySource(bytes: Uint8Array): SourceReader {
  return {
    read(offset, dst, dstOffset, length) {
      if (offset < 0 || offset + length > bytes.length) throw new RangeError(`source read [${offset}, +${length}) outside ${bytes.length} bytes`);
      dst.set(bytes.subarray(offset, offset + length), dstOffset);
    },
  };
}
