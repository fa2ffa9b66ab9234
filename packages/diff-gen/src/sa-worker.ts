// Worker entry: sorts one image (suffix array + LCP array) off the main thread.
import { parentPort, workerData } from 'node:worker_threads';
import { buildLcpArray, buildSuffixArray } from './suffix-array.js';

const data = workerData as Uint8Array;
const sa = buildSuffixArray(data);
const lcp = buildLcpArray(data, sa);
parentPort!.postMessage({ sa, lcp }, [sa.buffer as ArrayBuffer, lcp.buffer as ArrayBuffer]);
