// Host-side convenience: apply a whole package held in memory, the way a device would.
import { copyBytes, type SourceReader } from './source-reader.js';
import { StreamPatcher, type PatchResult } from './stream-patcher.js';
import type { PatcherLimits } from './package-format.js';
import type { Crc32 } from './crc32.js';
import type { Sha256Factory } from './sha256.js';
import type { TrustCheck } from './signature.js';

export interface ApplyOptions {
  limits?: PatcherLimits;
  /** Feed the package in pieces of this size (tests exercise the streaming path with it). */
  pieceSize?: number;
  onChunk?: (index: number, total: number) => void;
  sha256?: Sha256Factory;
  crc32?: Crc32;
  /**
   * `old` may be overwritten: an inplace package is then restored in its buffer (when NEW fits in it),
   * saving a copy of the image. The result may share memory with `old`.
   */
  consumeOld?: boolean;
  /** Judges the package's signature before anything is produced (e.g. `trustCheck({ keys })`). */
  trust?: TrustCheck;
}

/**
 * Restores NEW from OLD and a package. `inplace` packages are restored over a copy of OLD, chunk by
 * chunk, exactly as on a device's partition: chunk i is written over its region once chunk i+1 has
 * been decoded (the window of docs/FORMAT.md: the device keeps region i-1's old bytes readable until
 * then), so a package that reads bytes the device would already have overwritten fails here too.
 */
export function applyPackage(old: Uint8Array, pkg: Uint8Array, opts: ApplyOptions = {}): { image: Uint8Array; result: PatchResult } {
  // A plain view even of a Buffer: the copy loops then see one array type (monomorphic).
  let partition = new Uint8Array(old.buffer, old.byteOffset, old.length);
  let target: Uint8Array = new Uint8Array(0);
  // In place, the chunk decoded last waits here until the next one is decoded (the device's backup).
  let waiting = new Uint8Array(0);
  let waitingAt = -1;
  let waitingLength = 0;
  const flush = () => {
    if (waitingAt >= 0) target.set(waiting.subarray(0, waitingLength), waitingAt);
    waitingAt = -1;
  };
  // The inplace partition reads from the bytes being overwritten; ab reads the untouched old image.
  const source: SourceReader = {
    read(offset, dst, dstOffset, length) {
      if (offset < 0 || offset + length > partition.length) throw new RangeError(`source read [${offset}, +${length}) outside the partition`);
      copyBytes(partition, offset, dst, dstOffset, length);
    },
  };
  const patcher = new StreamPatcher({
    source,
    sourceLength: old.length,
    sha256: opts.sha256,
    crc32: opts.crc32,
    limits: opts.limits,
    trust: opts.trust,
    onHeader(h) {
      if (h.mode === 'inplace') {
        if (!opts.consumeOld || h.newSize > partition.length) {
          const grown = new Uint8Array(Math.max(h.oldSize, h.newSize)).fill(0xff);
          grown.set(partition);
          partition = grown;
        }
        target = partition;
        waiting = new Uint8Array(h.splitSize);
      } else {
        target = new Uint8Array(h.newSize);
      }
    },
    sink(index, offset, bytes) {
      if (patcher.header!.mode === 'inplace') {
        flush();
        waiting.set(bytes);
        waitingAt = offset;
        waitingLength = bytes.length;
      } else {
        target.set(bytes, offset);
      }
      opts.onChunk?.(index, patcher.header!.chunkCount);
    },
  });
  const piece = opts.pieceSize ?? 1 << 16;
  for (let off = 0; off < pkg.length; off += piece) patcher.push(pkg.subarray(off, Math.min(pkg.length, off + piece)));
  const result = patcher.end();
  flush();
  return { image: target.subarray(0, result.header.newSize), result };
}
