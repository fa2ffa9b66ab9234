// Sorting the sources is most of a diff's time, so it uses both cores: with two images (OLD and NEW) the
// second is sorted in a worker while this thread sorts the first; with one, a worker starts while this
// thread sorts it and then shares the LCP passes.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { lcpOfSortedSuffixes } from './lcp-array.js';
import { allocateLcpJob, CTL_GO, CTL_SIDE_JOB, shareLcpWork, type LcpJob } from './lcp-share.js';
import { bucketWidthFor } from './prefix-buckets.js';
import { indexImage, type BuiltIndex } from './source-window.js';
import { buildSuffixArray } from './suffix-array.js';

const WORKER = new URL('./sa-worker.js', import.meta.url);
const LCP_WORKER = new URL('./lcp-worker.js', import.meta.url);
/** Below this, a worker's start-up costs more than it saves. */
const MIN_PARALLEL_BYTES = 1 << 20;

/** Sorts one image in a worker thread (needs the compiled worker). */
export function indexInWorker(data: Uint8Array): Promise<BuiltIndex> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER, { workerData: data });
    worker.once('message', (m: { sa: Int32Array; lcp: Int32Array }) => resolve({ data, sa: m.sa, lcp: m.lcp }));
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (code !== 0) reject(new Error(`suffix-array worker exited with status ${code}`));
    });
  });
}

/** What the helper worker gets: the LCP job plus the prefix bucket table it fills in first. */
export interface HelperJob extends LcpJob {
  bucketWidth: 2 | 3;
  buckets: Int32Array;
}

/**
 * Sorts one image here while a worker builds its prefix bucket table; both threads then build the LCP
 * array. The result (a copy of the data too) lives in shared memory, so that other workers can search
 * it without copying. If the worker fails, this thread builds the LCP array alone and returns the
 * caller's data (nothing else then shares the index).
 */
export async function indexWithLcpHelper(data: Uint8Array, block?: number): Promise<BuiltIndex> {
  const bucketWidth = bucketWidthFor(data.length);
  const job: HelperJob = {
    ...allocateLcpJob(data, block),
    bucketWidth,
    buckets: new Int32Array(new SharedArrayBuffer(4 * ((1 << (8 * bucketWidth)) + 1))),
  };
  const worker = new Worker(LCP_WORKER, { workerData: job });
  const failed = new Promise<never>((_, reject) => {
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (code !== 0) reject(new Error(`LCP worker exited with status ${code}`));
    });
  });
  failed.catch(() => {}); // only observed through the race below
  let sa: Int32Array;
  try {
    // Straight into shared memory: no copy, and no second 4n-byte array.
    sa = buildSuffixArray(data, job.sa);
  } catch (e) {
    // The worker is still waiting for the go signal.
    void worker.terminate();
    throw e;
  }
  Atomics.store(job.ctl, CTL_GO, 1);
  Atomics.notify(job.ctl, CTL_GO);
  try {
    await Promise.race([shareLcpWork(job, waitAsync), failed]);
    // Normally long done: the table takes a fraction of the sort's time.
    while (Atomics.load(job.ctl, CTL_SIDE_JOB) === 0) await Promise.race([waitAsync(job.ctl, CTL_SIDE_JOB, 0), failed]);
  } catch {
    void worker.terminate();
    return { data, sa, lcp: lcpOfSortedSuffixes(data, sa) };
  }
  // It exits by itself once it sees the last pass done; nothing to wait for.
  worker.unref();
  return { data: job.data, sa: job.sa, lcp: job.lcp, buckets: job.buckets };
}

function waitAsync(ctl: Int32Array, index: number, value: number): unknown {
  const r = (Atomics as unknown as AtomicsWaitAsync).waitAsync(ctl, index, value);
  return r.async ? r.value : undefined;
}

/** Atomics.waitAsync (Node >= 16), missing from the ES2022 lib typings. */
interface AtomicsWaitAsync {
  waitAsync(ctl: Int32Array, index: number, value: number): { async: false; value: string } | { async: true; value: Promise<string> };
}

/**
 * Whether indexImages(images) will build its index in shared memory (one large image, compiled workers),
 * where other workers can search it. It may still fall back to ordinary memory if its worker fails.
 */
export function indexesInSharedMemory(images: Uint8Array[]): boolean {
  return images.length === 1 && images[0].length >= MIN_PARALLEL_BYTES && existsSync(fileURLToPath(LCP_WORKER));
}

/**
 * Suffix and LCP arrays of every image, using a worker thread for large images when the compiled
 * workers are available (running from TypeScript sources, everything stays on this thread).
 */
export async function indexImages(images: Uint8Array[]): Promise<BuiltIndex[]> {
  if (indexesInSharedMemory(images)) return [await indexWithLcpHelper(images[0])];
  const parallel = images.length === 2 && images[1].length >= MIN_PARALLEL_BYTES && existsSync(fileURLToPath(WORKER));
  if (!parallel) return images.map(indexImage);
  const second = indexInWorker(images[1]);
  const first = indexImage(images[0]);
  return [first, await second];
}
