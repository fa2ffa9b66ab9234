// Matching is the last long step on one thread: a worker, started while the sources are sorted, takes
// chunks from the same counter as the main thread. The sorted index is already in shared memory
// (index-images.ts), so handing it over copies nothing.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { diffChunk, type ChunkDiff, type ChunkDiffJob } from './chunk-diff.js';
import { sharedCopy } from './shared-memory.js';

const WORKER = new URL('./chunk-worker.js', import.meta.url);

/** What the worker gets once the index is ready. */
export interface HelperStart extends ChunkDiffJob {
  count: number;
  /** next[0] = the next chunk to claim. */
  next: Int32Array;
}

export class ChunkHelper {
  private readonly worker: Worker;
  private readonly failed: Promise<never>;

  /** Starts the worker now (it boots while this thread works); undefined if the compiled worker is missing. */
  static start(): ChunkHelper | undefined {
    return existsSync(fileURLToPath(WORKER)) ? new ChunkHelper() : undefined;
  }

  private constructor() {
    this.worker = new Worker(WORKER);
    this.failed = new Promise<never>((_, reject) => {
      this.worker.once('error', reject);
      this.worker.once('exit', (code) => reject(new Error(`chunk worker exited with status ${code} before finishing`)));
    });
    this.failed.catch(() => {}); // observed through run()
  }

  /** Stop the worker unused (for example when the index is not in shared memory). */
  cancel(): void {
    void this.worker.terminate();
  }

  /**
   * Diff chunks 0..count-1 on both threads; `take` receives each chunk exactly once (in no particular
   * order). This thread yields between its chunks so that the worker's results are taken promptly.
   * If the worker fails, this thread diffs whatever it had claimed but not delivered. The job's index
   * must be in shared memory; NEW is copied there here.
   */
  async run(job: ChunkDiffJob, count: number, take: (i: number, d: ChunkDiff) => void): Promise<void> {
    const next = new Int32Array(new SharedArrayBuffer(4));
    const got = new Uint8Array(count);
    // A throw from `take` (a progress callback) is the caller's, wherever it happens: in the message
    // listener it would otherwise escape as an uncaught exception.
    let takeFailed: { error: unknown } | undefined;
    const deliver = (i: number, d: ChunkDiff): void => {
      got[i] = 1;
      take(i, d);
    };
    const finished = new Promise<void>((resolve) => {
      this.worker.on('message', (m: ({ i: number } & ChunkDiff) | { done: true }) => {
        if (takeFailed !== undefined) return;
        try {
          if ('done' in m) resolve();
          else if (got[m.i] === 0) deliver(m.i, m);
        } catch (error) {
          takeFailed = { error };
          this.cancel();
          resolve();
        }
      });
    });
    try {
      this.worker.postMessage({ ...job, newImage: sharedCopy(job.newImage), count, next } satisfies HelperStart);
      for (let i = Atomics.add(next, 0, 1); i < count && takeFailed === undefined; i = Atomics.add(next, 0, 1)) {
        deliver(i, diffChunk(job, i));
        await new Promise(setImmediate);
      }
    } catch (e) {
      // Whatever failed here (bad options, a throwing progress callback, no memory for the copy) is not
      // the worker's to finish.
      this.cancel();
      throw e;
    }
    try {
      await Promise.race([finished, this.failed]);
    } catch {
      void this.worker.terminate();
      for (let i = 0; i < count; i++) if (got[i] === 0) deliver(i, diffChunk(job, i));
    }
    if (takeFailed !== undefined) throw takeFailed.error;
  }
}
