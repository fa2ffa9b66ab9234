// Votes for a transform's label map: where a plain diff copied a reference of NEW from a reference of
// OLD of the same kind, the two say where OLD's target went.
import type { Labels, TransformCodec } from '@otadiff/patch-apply';
import { LabelVotes } from './label-map-builder.js';

const BRANCH = 1;
const WORD = 2;

/** One chunk's copies as the plain diff made them. */
export interface ChunkCopies {
  /** NEW offset of the chunk. */
  start: number;
  /** Window positions below this are restored NEW, not OLD. */
  boundary: number;
  /** (copyLen, srcPos, extraLen) triples, in order. */
  ops: Int32Array;
}

/** Both ends of a vote must be labels (x < span). */
export function referenceVotes(codec: TransformCodec, oldImage: Uint8Array, newImage: Uint8Array, labels: Labels, chunks: readonly ChunkCopies[]): LabelVotes {
  const span = labels.span;
  // OLD's references by position: their kind and label.
  const kind = new Uint8Array(oldImage.length);
  const label = new Int32Array(oldImage.length);
  codec.references(
    oldImage,
    oldImage.length,
    0,
    labels,
    (s, target) => {
      kind[s] = BRANCH;
      label[s] = target;
    },
    (w, x) => {
      kind[w] = WORD;
      label[w] = x;
    },
  );
  // Where each NEW byte was copied from (-1: a literal, or a copy of restored NEW).
  const from = new Int32Array(newImage.length).fill(-1);
  for (const c of chunks) {
    let t = c.start;
    for (let k = 0; k < c.ops.length; k += 3) {
      const [copyLen, srcPos, extraLen] = [c.ops[k], c.ops[k + 1], c.ops[k + 2]];
      if (srcPos >= c.boundary) for (let j = 0; j < copyLen; j++) from[t + j] = srcPos + j;
      t += copyLen + extraLen;
    }
  }
  const votes = new LabelVotes();
  const vote = (q: number, x: number, k: number) => {
    const p = from[q];
    // The whole reference copied in one piece from a reference of the same kind.
    if (p < 0 || from[q + 3] !== p + 3 || kind[p] !== k) return;
    const oldX = label[p];
    if (oldX >= 0 && oldX < span && x >= 0 && x < span) votes.add(oldX, x);
  };
  codec.references(newImage, newImage.length, 0, labels, (s, target) => vote(s, target, BRANCH), (w, x) => vote(w, x, WORD));
  return votes;
}
