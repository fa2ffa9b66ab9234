// Child process (run with --expose-gc): applies a package with the streaming patcher the way a device
// does, fed from a file in 4 KiB pieces, reading its source from a file and writing chunks to a file,
// so no image-sized buffer exists. At every chunk it collects garbage and samples heapUsed +
// arrayBuffers; it prints the largest growth over the baseline taken just before the patcher exists.
//   node --expose-gc heap-child.js OLD PACKAGE NEW WORKFILE
import { getHeapSpaceStatistics } from 'node:v8';
import { closeSync, copyFileSync, ftruncateSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { FIXED_HEADER_BYTES, parseFixedHeader, StreamPatcher, type FixedHeader, type SourceReader } from '@otadiff/patch-apply';

const PIECE = 4096;

export interface HeapReport {
  mode: string;
  ramBytes: number;
  chunks: number;
  /** Largest growth of heapUsed + arrayBuffers in the first apply of the process (compiling the patcher's code counts). */
  coldGrowth: number;
  /** The same, smallest of applies 2-4 of the process, once the code is compiled. */
  warmGrowth: number;
  /** Largest growth of heapUsed + arrayBuffers minus V8's code spaces, smallest of applies 2-4: the patcher's data. */
  dataGrowth: number;
  /** Largest growth of arrayBuffers alone, smallest of applies 2-4: the typed arrays, i.e. every allocation sized by the package. */
  arrayGrowth: number;
  restoredOk: boolean;
}

function fileSource(fd: number): SourceReader {
  return {
    read(offset, dst, dstOffset, length) {
      let done = 0;
      while (done < length) {
        const n = readSync(fd, dst, dstOffset + done, length - done, offset + done);
        if (n === 0) throw new RangeError(`source read [${offset}, +${length}) past the end of the file`);
        done += n;
      }
    },
  };
}

interface Live {
  /** heapUsed + arrayBuffers. */
  all: number;
  arrays: number;
  /** The same without V8's code spaces (JIT-compiled code is the engine's, not the patcher's data). */
  data: number;
}

/**
 * Live bytes after full collections. One gc() is not enough: ArrayBuffer backing stores are freed by
 * a concurrent sweeper that the next collection finishes, so collect until two readings agree.
 */
function live(gc: () => void): Live {
  let last: Live = { all: -1, data: -1, arrays: -1 };
  for (let i = 0; i < 6; i++) {
    gc();
    const m = process.memoryUsage();
    let code = 0;
    for (const sp of getHeapSpaceStatistics()) if (sp.space_name.startsWith('code')) code += sp.space_used_size;
    const now = { all: m.heapUsed + m.arrayBuffers, data: m.heapUsed - code + m.arrayBuffers, arrays: m.arrayBuffers };
    if (now.all === last.all) return now;
    last = now;
  }
  return last;
}

/** One streaming apply; returns the largest live-memory growth seen at a chunk boundary. */
function applyOnce(oldPath: string, pkgPath: string, outPath: string, gc: () => void): { growth: number; dataGrowth: number; arrayGrowth: number; ramBytes: number; chunks: number; mode: string } {
  const piece = new Uint8Array(PIECE);
  const pkgFd = openSync(pkgPath, 'r');
  const head = new Uint8Array(FIXED_HEADER_BYTES);
  readSync(pkgFd, head, 0, FIXED_HEADER_BYTES, 0);
  const mode = parseFixedHeader(head).mode;
  // inplace: the partition is one file holding OLD, overwritten chunk by chunk; ab: OLD stays, NEW goes elsewhere.
  copyFileSync(oldPath, outPath);
  const outFd = openSync(outPath, 'r+');
  const srcFd = mode === 'inplace' ? outFd : openSync(oldPath, 'r');
  if (mode === 'ab') ftruncateSync(outFd, 0);
  let max = 0;
  let maxData = 0;
  let maxArrays = 0;
  let pos = 0;
  // Everything the harness itself keeps (the source, the callbacks, the copy block, the pending chunk's
  // place) exists before the baseline, so that the growth is the patcher's alone.
  const source = fileSource(srcFd);
  let baseline: Live = { all: 0, data: 0, arrays: 0 };
  const sample = (): void => {
    const now = live(gc);
    max = Math.max(max, now.all - baseline.all);
    maxData = Math.max(maxData, now.data - baseline.data);
    maxArrays = Math.max(maxArrays, now.arrays - baseline.arrays);
  };
  // In place, a device writes chunk i over its region only once chunk i+1 is decoded; meanwhile chunk i
  // waits in one of two backup slots on flash (here a file), and is copied through a small block.
  const backupFd = mode === 'inplace' ? openSync(`${outPath}.backup`, 'w+') : -1;
  const block = new Uint8Array(PIECE);
  let pendingSlot = 0;
  let pendingOffset = 0;
  let pendingLength = 0;
  const flushPending = (): void => {
    for (let done = 0; done < pendingLength; done += block.length) {
      const n = Math.min(block.length, pendingLength - done);
      readSync(backupFd, block, 0, n, pendingSlot + done);
      writeSync(outFd, block, 0, n, pendingOffset + done);
    }
    pendingLength = 0;
  };
  let splitSize = 0;
  const onHeader = (h: FixedHeader): void => {
    splitSize = h.splitSize;
  };
  const sink = (index: number, offset: number, bytes: Uint8Array): void => {
    if (mode === 'inplace') {
      const slot = (index % 2) * splitSize;
      writeSync(backupFd, bytes, 0, bytes.length, slot);
      flushPending();
      pendingSlot = slot;
      pendingOffset = offset;
      pendingLength = bytes.length;
    } else {
      writeSync(outFd, bytes, 0, bytes.length, offset);
    }
    sample();
  };
  baseline = live(gc);
  const patcher = new StreamPatcher({ source, onHeader, sink });
  for (;;) {
    const n = readSync(pkgFd, piece, 0, PIECE, pos);
    if (n === 0) break;
    pos += n;
    patcher.push(piece.subarray(0, n));
  }
  const { header } = patcher.end();
  flushPending();
  sample();
  const ramBytes = patcher.ramBytes!;
  ftruncateSync(outFd, header.newSize);
  closeSync(outFd);
  if (srcFd !== outFd) closeSync(srcFd);
  if (backupFd >= 0) closeSync(backupFd);
  closeSync(pkgFd);
  return { growth: max, dataGrowth: maxData, arrayGrowth: maxArrays, ramBytes, chunks: header.chunkCount, mode };
}

function main(argv: string[]): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run with node --expose-gc');
  const [oldPath, pkgPath, newPath, workFile, warmArg] = argv;
  if (workFile === undefined) throw new Error('usage: heap-child.js OLD PACKAGE NEW WORKFILE [WARM_APPLIES]');
  // The first apply compiles the patcher. Later ones still see the JIT allocate now and then (optimised
  // code, deoptimisation data), which only ever adds to the peak, so the smallest peak of the further
  // applies (3 by default) is the patcher's own footprint; a leak would still show, as growth in every apply.
  const cold = applyOnce(oldPath, pkgPath, workFile, gc);
  const warmRuns = Array.from({ length: Number(warmArg ?? 3) }, () => applyOnce(oldPath, pkgPath, workFile, gc));
  const warm = { ...warmRuns[0], growth: Math.min(...warmRuns.map((w) => w.growth)), dataGrowth: Math.min(...warmRuns.map((w) => w.dataGrowth)), arrayGrowth: Math.min(...warmRuns.map((w) => w.arrayGrowth)) };
  const report: HeapReport = {
    mode: warm.mode,
    ramBytes: warm.ramBytes,
    chunks: warm.chunks,
    coldGrowth: cold.growth,
    warmGrowth: warm.growth,
    dataGrowth: warm.dataGrowth,
    arrayGrowth: warm.arrayGrowth,
    restoredOk: Buffer.compare(readFileSync(workFile), readFileSync(newPath)) === 0,
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

main(process.argv.slice(2));
