// The LCP passes split into blocks that two threads claim from a shared counter, so whichever thread
// is free (or started first) takes the next block and neither waits on a fixed half.
import { lcpPass, phiPass, plcpPass } from './lcp-array.js';
import { sharedCopy } from './shared-memory.js';

/** Everything both threads see: shared memory only. */
export interface LcpJob {
  data: Uint8Array;
  sa: Int32Array;
  /** phi, then plcp in place (see lcp-array.ts). */
  phi: Int32Array;
  lcp: Int32Array;
  /** Control words, see CTL_*. */
  ctl: Int32Array;
  /** Elements per claimed block (the same on both threads). */
  block: number;
}

/** ctl[CTL_GO] becomes 1 once `sa` is filled in; then the passes may start. */
export const CTL_GO = 0;
// Per pass k (0..2): ctl[1 + 2k] = next block to claim, ctl[2 + 2k] = blocks finished.
/** ctl[CTL_SIDE_JOB] becomes 1 when the worker's own job before the passes (index-images.ts) is done. */
export const CTL_SIDE_JOB = 7;
export const CTL_WORDS = 8;
/** Big enough that claiming is free, small enough that the threads end a pass close together. */
const BLOCK = 1 << 19;

/** Wait while ctl[index] === value (blocking in a worker, asynchronous on the main thread). */
export type Waiter = (ctl: Int32Array, index: number, value: number) => unknown;

/** Take part in all three passes; resolves when the LCP array is complete. */
export async function shareLcpWork(job: LcpJob, wait: Waiter): Promise<void> {
  const { data, sa, phi, lcp, ctl, block } = job;
  const n = data.length;
  const blocks = Math.ceil(n / block);
  for (let pass = 0; pass < 3; pass++) {
    const claim = 1 + 2 * pass;
    const done = claim + 1;
    for (let b = Atomics.add(ctl, claim, 1); b < blocks; b = Atomics.add(ctl, claim, 1)) {
      const from = b * block;
      const to = Math.min(n, from + block);
      if (pass === 0) phiPass(sa, phi, from, to);
      else if (pass === 1) plcpPass(data, phi, from, to);
      else lcpPass(sa, phi, lcp, from, to);
      if (Atomics.add(ctl, done, 1) + 1 === blocks) Atomics.notify(ctl, done);
    }
    // The next pass reads what every block of this one wrote.
    for (let d = Atomics.load(ctl, done); d < blocks; d = Atomics.load(ctl, done)) await wait(ctl, done, d);
  }
}

/** Shared-memory buffers for an LCP job over n bytes (`data` is copied in; `sa` is filled later). */
export function allocateLcpJob(data: Uint8Array, block = BLOCK): LcpJob {
  const n = data.length;
  return {
    data: sharedCopy(data),
    sa: new Int32Array(new SharedArrayBuffer(4 * n)),
    phi: new Int32Array(new SharedArrayBuffer(4 * n)),
    lcp: new Int32Array(new SharedArrayBuffer(4 * n)),
    ctl: new Int32Array(new SharedArrayBuffer(4 * CTL_WORDS)),
    block,
  };
}
