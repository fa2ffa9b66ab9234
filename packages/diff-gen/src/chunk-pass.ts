// One pass over the chunks: match each against its window (on this thread, and on a helper thread when
// one was started), compressing each command stream on libuv's threads meanwhile.
import type { LzmaParams } from '@otadiff/patch-apply';
import { diffChunk, type ChunkDiff, type ChunkDiffJob } from './chunk-diff.js';
import type { ChunkHelper } from './chunk-helper.js';
import { compressRaw } from './lzma-compress.js';
import { isShared } from './shared-memory.js';

export interface ChunkRecord {
  record: Uint8Array;
  rawLength: number;
  /** CRC-32 of the chunk's target bytes. */
  crc: number;
  /** The matcher's ops (ChunkDiff.ops). */
  ops: Int32Array;
}

/** Records of chunks 0..count-1, in chunk order; `onChunk` after each is matched. */
export async function diffChunks(job: ChunkDiffJob, count: number, lzma: LzmaParams, helper: ChunkHelper | undefined, onChunk: (done: number) => void): Promise<ChunkRecord[]> {
  const pending: Promise<ChunkRecord>[] = new Array(count);
  let done = 0;
  const take = (i: number, { raw, crc, ops }: ChunkDiff): void => {
    pending[i] = compressRaw(raw, lzma).then((record) => ({ record, rawLength: raw.length, crc, ops }));
    onChunk(++done);
  };
  const old = job.old;
  if (helper && isShared(old.data, old.sa, old.lcp, old.buckets)) {
    await helper.run(job, count, take);
  } else {
    helper?.cancel();
    for (let i = 0; i < count; i++) take(i, diffChunk(job, i));
  }
  return Promise.all(pending);
}
