// One chunk of NEW against the window the device will have when it restores that chunk: match, encode
// and checksum. Pure given its inputs, so either thread may do any chunk (chunk-helper.ts).
import { chunkLength, nodeCrc32, windowBoundary, windowLength, type PatchMode } from '@otadiff/patch-apply';
import { encodeCommands } from './command-stream.js';
import { matchChunk, type ChunkWindow, type MatchOptions, type SourceIndex } from './matcher.js';

export interface ChunkDiffJob {
  mode: Exclude<PatchMode, 'raw'>;
  splitSize: number;
  old: SourceIndex;
  /** SA(new), for referencing restored NEW bytes below the boundary (referenceNew). */
  newer?: SourceIndex;
  newImage: Uint8Array;
  match?: MatchOptions;
}

export interface ChunkDiff {
  /** The chunk's command stream, before compression. */
  raw: Uint8Array;
  /** CRC-32 of the chunk's target bytes (its NEW bytes, unless the job's newImage is transformed). */
  crc: number;
  /** The matcher's ops as (copyLen, srcPos, extraLen) triples: where each byte came from (label votes). */
  ops: Int32Array;
}

export function diffChunk(job: ChunkDiffJob, i: number): ChunkDiff {
  // The patcher's rules for the chunk and its window (package-format.ts), so that both sides agree.
  const h = { mode: job.mode, splitSize: job.splitSize, oldSize: job.old.data.length, newSize: job.newImage.length };
  const start = i * h.splitSize;
  const target = job.newImage.subarray(start, start + chunkLength(h, i));
  const boundary = windowBoundary(h, i);
  const window: ChunkWindow = {
    old: job.old,
    newer: boundary > 0 && job.newer !== undefined ? job.newer : undefined,
    boundary,
    length: windowLength(h, i),
  };
  // The patcher's source position starts at the chunk offset; aligning the matcher there keeps seeks small.
  const startPos = Math.min(start, window.length);
  const ops = matchChunk(target, window, { ...job.match, startPos });
  const flat = new Int32Array(3 * ops.length);
  ops.forEach((op, k) => flat.set([op.copyLen, op.srcPos, op.extraLen], 3 * k));
  return { raw: encodeCommands(ops, target, window, startPos), crc: nodeCrc32(target), ops: flat };
}
