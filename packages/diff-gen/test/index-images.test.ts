import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { indexImage } from '../src/source-window.js';
import { bucketWidthFor, prefixBucketStarts } from '../src/prefix-buckets.js';
import { codeLike } from './edits.js';

// The worker runs compiled JavaScript: this test uses the build that `npm ci` (prepare) makes.
const DIST = new URL('../dist/index-images.js', import.meta.url);

describe('indexImages', () => {
  it('sorts the second image in a worker thread with the same result as sorting here', async () => {
    expect(existsSync(DIST), 'packages/diff-gen/dist is missing: run `npm run build`').toBe(true);
    const { indexImages, indexInWorker } = (await import(DIST.href)) as typeof import('../src/index-images.js');
    const a = codeLike(1 << 20, 1);
    const b = codeLike((1 << 20) + 123, 2);
    const [ia, ib] = await indexImages([a, b]);
    const ra = indexImage(a);
    const rb = indexImage(b);
    expect(Buffer.compare(Buffer.from(ia.sa.buffer), Buffer.from(ra.sa.buffer))).toBe(0);
    expect(Buffer.compare(Buffer.from(ib.sa.buffer), Buffer.from(rb.sa.buffer))).toBe(0);
    expect(Buffer.compare(Buffer.from(ib.lcp.buffer), Buffer.from(rb.lcp.buffer))).toBe(0);
    expect(ib.data).toBe(b);
    // The worker itself (indexImages falls back to this thread when it cannot start one).
    const w = await indexInWorker(a);
    expect(Buffer.compare(Buffer.from(w.sa.buffer), Buffer.from(ra.sa.buffer))).toBe(0);
  });

  it('sorts one image here and shares its LCP passes with a worker, with the same result as one thread', async () => {
    expect(existsSync(DIST), 'packages/diff-gen/dist is missing: run `npm run build`').toBe(true);
    const { indexImages, indexWithLcpHelper } = (await import(DIST.href)) as typeof import('../src/index-images.js');
    const a = codeLike((1 << 20) + 77, 3);
    const ra = indexImage(a);
    // Small blocks: both threads get many, and plcp restarts at many block starts.
    for (const w of [await indexWithLcpHelper(a, 4096), (await indexImages([a]))[0]]) {
      expect(Buffer.compare(Buffer.from(w.data), Buffer.from(a))).toBe(0);
      expect(Buffer.compare(Buffer.from(new Uint8Array(w.sa.buffer)), Buffer.from(ra.sa.buffer))).toBe(0);
      expect(Buffer.compare(Buffer.from(new Uint8Array(w.lcp.buffer)), Buffer.from(ra.lcp.buffer))).toBe(0);
      // The worker's side job: the prefix bucket table.
      expect(w.buckets).toEqual(prefixBucketStarts(a, bucketWidthFor(a.length)));
    }
  });
});
