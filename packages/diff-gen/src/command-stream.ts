// Serialises a chunk's ops into the command stream the patcher runs (docs/FORMAT.md, "Command stream").
import { ByteWriter } from './byte-writer.js';
import type { ChunkWindow, Op } from './matcher.js';

/**
 * `start` is the patcher's initial source position for this chunk (the chunk offset, clamped to the
 * window). Each command starts with a seek relative to the end of the previous copy; a copy's bytes
 * that differ from the window are sent as (unchanged run, difference mod 256) pairs: sparse relocation
 * changes compress about 5-10% better that way than as a dense run of mostly-zero differences.
 */
export function encodeCommands(ops: readonly Op[], target: Uint8Array, window: ChunkWindow, start: number): Uint8Array {
  const w = new ByteWriter(target.length + 64);
  const B = window.boundary;
  const oldData = window.old.data;
  const newData = window.newer?.data;
  let pos = start;
  let t = 0;
  const live = ops.filter((op) => op.copyLen + op.extraLen > 0);
  for (const op of live) {
    const to = op.copyLen > 0 ? op.srcPos : pos;
    w.zigzag(to - pos);
    pos = to;
    w.varint(op.copyLen);
    if (op.copyLen > 0) {
      if (op.srcPos < 0 || op.srcPos + op.copyLen > window.length) throw new Error('internal: op reads outside the source window');
      // Changed bytes as (run of unchanged bytes, difference) pairs, then the run to the end of the copy.
      let gap = 0;
      for (let k = 0; k < op.copyLen; k++) {
        const p = op.srcPos + k;
        const d = (target[t + k] - (p < B ? newData![p] : oldData[p])) & 0xff;
        if (d === 0) {
          gap++;
          continue;
        }
        w.varint(gap);
        w.byte(d);
        gap = 0;
      }
      w.varint(gap);
      pos += op.copyLen;
      t += op.copyLen;
    }
    w.varint(op.extraLen);
    if (op.extraLen > 0) {
      w.bytes(target.subarray(t, t + op.extraLen));
      t += op.extraLen;
    }
  }
  if (t !== target.length) throw new Error(`internal: ops cover ${t} of ${target.length} bytes`);
  return w.finish();
}
