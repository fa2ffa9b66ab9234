// The transform pass of the generator: learn the label map from the plain pass's copies, rewrite OLD as it
// predicts NEW and NEW as the transform encodes it (patch-apply's codecs), and diff every chunk again
// between the two. The caller keeps, chunk by chunk, whichever record is smaller.
import { CODECS, DEFAULT_MAX_MAP_ENTRIES, windowBoundary, type LabelMap, type Labels, type LzmaParams, type TransformKind } from '@otadiff/patch-apply';
import type { ChunkDiffJob } from './chunk-diff.js';
import { ChunkHelper } from './chunk-helper.js';
import { diffChunks, type ChunkRecord } from './chunk-pass.js';
import { indexesInSharedMemory, indexImages } from './index-images.js';
import { buildLabelMap } from './label-map-builder.js';
import { referenceVotes } from './reference-votes.js';

/** Below this, a chunk worker's start-up costs more than it saves (as in generate.ts). */
const MIN_HELPER_BYTES = 1 << 20;

/** Which transform, and its labels (addresses base + x, x < span, that are the image's own; code at origin). */
export interface TransformPlan extends Labels {
  kind: TransformKind;
}

export interface TransformPassResult {
  map: LabelMap;
  records: ChunkRecord[];
}

export async function transformPass(
  plan: TransformPlan,
  job: ChunkDiffJob,
  plain: readonly ChunkRecord[],
  lzma: LzmaParams,
  maxMapEntries: number = DEFAULT_MAX_MAP_ENTRIES,
  onChunk: (done: number) => void = () => {},
): Promise<TransformPassResult> {
  const codec = CODECS[plan.kind];
  const oldImage = job.old.data;
  const newImage = job.newImage;
  const copies = plain.map((c, i) => ({ start: i * job.splitSize, boundary: windowBoundary(job, i), ops: c.ops }));
  const votes = referenceVotes(codec, oldImage, newImage, plan, copies);
  let map = buildLabelMap(votes);
  // A device holds the map in RAM: past its limit, fewer (coarser) segments.
  for (let cost = 4; map.starts.length > maxMapEntries; cost *= 2) map = buildLabelMap(votes, cost);
  const predicted = oldImage.slice();
  codec.predict(predicted, predicted.length, 0, { ...plan, map });
  const encoded = newImage.slice();
  codec.encode(encoded, encoded.length, 0);
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
