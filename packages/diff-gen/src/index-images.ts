// Sorting the sources is most of a diff's time; in place there are two images (OLD and NEW) to sort, so
// the second is sorted on another core while this thread sorts the first.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { indexImage, type SourceIndex } from './source-window.js';

const WORKER = new URL('./sa-worker.js', import.meta.url);
/** Below this, a worker's start-up costs more than it saves. */
const MIN_PARALLEL_BYTES = 1 << 20;

/** Sorts one image in a worker thread (needs the compiled worker). */
export function indexInWorker(data: Uint8Array): Promise<Required<SourceIndex>> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER, { workerData: data });
    worker.once('message', (m: { sa: Int32Array; lcp: Int32Array }) => resolve({ data, sa: m.sa, lcp: m.lcp }));
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (code !== 0) reject(new Error(`suffix-array worker exited with status ${code}`));
    });
  });
}

/**
 * Suffix and LCP arrays of every image, the second one in a worker thread when there are two large
 * images and the compiled worker is available (running from TypeScript sources, everything stays here).
 */
export async function indexImages(images: Uint8Array[]): Promise<Required<SourceIndex>[]> {
  const parallel = images.length === 2 && images[1].length >= MIN_PARALLEL_BYTES && existsSync(fileURLToPath(WORKER));
  if (!parallel) return images.map(indexImage);
  const second = indexInWorker(images[1]);
  const first = indexImage(images[0]);
  return [first, await second];
}
