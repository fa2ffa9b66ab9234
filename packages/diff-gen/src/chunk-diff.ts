// One chunk of NEW against the window the device will have when it restores that chunk: match, encode
// and checksum. Pure given its inputs, so either thread may do any chunk (chunk-helper.ts).
import { nodeCrc32, windowBoundary, type PatchMode } from '@otadiff/patch-apply';
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
  /** CRC-32 of the chunk's NEW bytes. */
  crc: number;
}

export function diffChunk(job: ChunkDiffJob, i: number): ChunkDiff {
  const S = job.splitSize;
  const start = i * S;
  const target = job.newImage.subarray(start, Math.min(job.newImage.length, start + S));
  const boundary = windowBoundary({ mode: job.mode, splitSize: S }, i);
  const window: ChunkWindow = {
    old: job.old,
    newer: boundary > 0 && job.newer !== undefined ? job.newer : undefined,
    boundary,
    length: Math.max(boundary, job.old.data.length),
  };
  // The patcher's source position starts at the chunk offset; aligning the matcher there keeps seeks small.
  const startPos = Math.min(start, window.length);
  const ops = matchChunk(target, window, { ...job.match, startPos });
  return { raw: encodeCommands(ops, target, window, startPos), crc: nodeCrc32(target) };
}
