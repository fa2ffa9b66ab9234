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
      copyBytes(bytes, offset, dst, dstOffset, length);
    },
  };
}

/**
 * Copies without allocating: most reads of the command loop are a few bytes long (the unchanged runs
 * between relocated addresses), where a subarray view per read would feed the garbage collector.
 */
export function copyBytes(src: Uint8Array, from: number, dst: Uint8Array, to: number, length: number): void {
  if (length < 64) {
    for (let k = 0; k < length; k++) dst[to + k] = src[from + k];
  } else {
    dst.set(src.subarray(from, from + length), to);
  }
}
