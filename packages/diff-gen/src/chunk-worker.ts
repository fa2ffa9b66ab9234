// Worker entry: diffs chunks claimed from a shared counter next to the main thread, sending each
// chunk's command stream back to be compressed there.
import { parentPort } from 'node:worker_threads';
import { diffChunk } from './chunk-diff.js';
import type { HelperStart } from './chunk-helper.js';

parentPort!.once('message', (job: HelperStart) => {
  for (let i = Atomics.add(job.next, 0, 1); i < job.count; i = Atomics.add(job.next, 0, 1)) {
    const { raw, crc, ops } = diffChunk(job, i);
    parentPort!.postMessage({ i, raw, crc, ops }, [raw.buffer as ArrayBuffer, ops.buffer as ArrayBuffer]);
  }
  parentPort!.postMessage({ done: true });
});
