// Worker entry: waits until the main thread has the suffix array, then shares the LCP passes with it.
import { workerData } from 'node:worker_threads';
import { CTL_GO, shareLcpWork, type LcpJob } from './lcp-share.js';

const job = workerData as LcpJob;
// A worker may block: wait for the go signal, then for each pass's last block.
while (Atomics.load(job.ctl, CTL_GO) === 0) Atomics.wait(job.ctl, CTL_GO, 0);
await shareLcpWork(job, (ctl, index, value) => Atomics.wait(ctl, index, value));
