// Serialises a chunk's ops into the command stream the patcher runs (docs/FORMAT.md, "Command stream").
import { ByteWriter } from './byte-writer.js';
import type { ChunkWindow, Op } from './matcher.js';

/**
 * `start` is the patcher's initial source position for this chunk (the chunk offset, clamped to the
 * window). Each command starts with a seek relative to the end of the previous copy; diff bytes are
 * target - window (mod 256).
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
      const d = w.reserve(op.copyLen);
      for (let k = 0; k < op.copyLen; k++) {
        const p = op.srcPos + k;
        const src = p < B ? newData![p] : oldData[p];
        d[k] = (target[t + k] - src) & 0xff;
      }
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
