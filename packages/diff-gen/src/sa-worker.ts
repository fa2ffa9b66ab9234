// Worker entry: sorts one image (suffix array + LCP array) off the main thread.
import { parentPort, workerData } from 'node:worker_threads';
import { buildSuffixArray } from './suffix-array.js';
import { lcpOfSortedSuffixes } from './lcp-array.js';

const data = workerData as Uint8Array;
const sa = buildSuffixArray(data);
const lcp = lcpOfSortedSuffixes(data, sa);
parentPort!.postMessage({ sa, lcp }, [sa.buffer as ArrayBuffer, lcp.buffer as ArrayBuffer]);
