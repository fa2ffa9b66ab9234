// The Thumb-2 pass of the generator: learn the label map from the plain pass's copies, rewrite OLD as it
// predicts NEW and NEW's branches as their targets (patch-apply's thumb2Predict / thumb2Encode), and
// diff every chunk again between the two. The caller keeps, chunk by chunk, whichever record is smaller.
import {
  DEFAULT_MAX_MAP_ENTRIES,
  forEachThumb2Reference,
  thumb2Encode,
  thumb2Predict,
  windowBoundary,
  type LabelMap,
  type LzmaParams,
} from '@otadiff/patch-apply';
import type { ChunkDiffJob } from './chunk-diff.js';
import { ChunkHelper } from './chunk-helper.js';
import { diffChunks, type ChunkRecord } from './chunk-pass.js';
import { indexesInSharedMemory, indexImages } from './index-images.js';
import { buildLabelMap } from './label-map-builder.js';
import { thumb2Votes } from './thumb2-votes.js';

/** Below this, a chunk worker's start-up costs more than it saves (as in generate.ts). */
const MIN_HELPER_BYTES = 1 << 20;

/**
 * Whether an image looks like Thumb-2 code: branch sites landing inside it at a rate far above what
 * random bytes give (about one in 8 KiB; Thumb code has dozens per KiB).
 */
export function looksLikeThumb2(image: Uint8Array): boolean {
  let inside = 0;
  forEachThumb2Reference(image, image.length, 0, 0, 0, (_s, target) => {
    if (target >= 0 && target < image.length) inside++;
  }, () => {});
  return inside >= 64 && inside >= image.length / 1024;
}

export interface Thumb2PassResult {
  map: LabelMap;
  records: ChunkRecord[];
}

export async function thumb2Pass(
  job: ChunkDiffJob,
  plain: readonly ChunkRecord[],
  base: number,
  lzma: LzmaParams,
  maxMapEntries: number = DEFAULT_MAX_MAP_ENTRIES,
  onChunk: (done: number) => void = () => {},
): Promise<Thumb2PassResult> {
  const oldImage = job.old.data;
  const newImage = job.newImage;
  const copies = plain.map((c, i) => ({ start: i * job.splitSize, boundary: windowBoundary(job, i), ops: c.ops }));
  const votes = thumb2Votes(oldImage, newImage, base, copies);
  let map = buildLabelMap(votes);
  // A device holds the map in RAM: past its limit, fewer (coarser) segments.
  for (let cost = 4; map.starts.length > maxMapEntries; cost *= 2) map = buildLabelMap(votes, cost);
  const predicted = oldImage.slice();
  thumb2Predict(predicted, predicted.length, 0, { map, base, oldSize: oldImage.length });
  const encoded = newImage.slice();
  thumb2Encode(encoded, encoded.length, 0);
  const count = plain.length;
  const helper = count > 1 && newImage.length >= MIN_HELPER_BYTES && indexesInSharedMemory([predicted]) ? ChunkHelper.start() : undefined;
  let old;
  try {
    [old] = await indexImages([predicted]);
  } catch (e) {
    helper?.cancel();
    throw e;
  }
  const records = await diffChunks({ ...job, old, newImage: encoded }, count, lzma, helper, onChunk);
  return { map, records };
}
