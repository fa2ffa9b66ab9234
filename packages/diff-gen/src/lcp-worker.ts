// Worker entry: while the main thread sorts the image, builds its prefix bucket table; then waits until
// the suffix array is there and shares the LCP passes with the main thread.
import { workerData } from 'node:worker_threads';
import { CTL_GO, CTL_SIDE_JOB, shareLcpWork } from './lcp-share.js';
import { prefixBucketStarts } from './prefix-buckets.js';
import type { HelperJob } from './index-images.js';

const job = workerData as HelperJob;
prefixBucketStarts(job.data, job.bucketWidth, job.buckets);
Atomics.store(job.ctl, CTL_SIDE_JOB, 1);
Atomics.notify(job.ctl, CTL_SIDE_JOB);
// A worker may block: wait for the go signal, then for each pass's last block.
while (Atomics.load(job.ctl, CTL_GO) === 0) Atomics.wait(job.ctl, CTL_GO, 0);
await shareLcpWork(job, (ctl, index, value) => Atomics.wait(ctl, index, value));
