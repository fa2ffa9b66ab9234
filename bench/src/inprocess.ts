// In-process throughput of the hot loops, in MB/s of output (1 MB = 10^6 bytes):
// the LZMA decoder alone over every record of a package, and the whole apply (streaming patcher fed
// from memory: header checks, SHA-256 of OLD and NEW, LZMA, command stream, chunk CRCs), and, to
// explain the difference, the patcher's SHA-256 alone over OLD and NEW.
import { readFileSync } from 'node:fs';
import { applyPackage, ChunkDecoder, hashSource, LzmaDecoder, memorySource, nodeCrc32, nodeSha256, parseHeader, recordsOffset, type PackageHeader } from '@otadiff/patch-apply';

export interface ThroughputRow {
  /** MB/s of decompressed command stream. */
  lzmaMBps: number;
  /** MB/s of restored NEW (the patcher's own pure-TypeScript SHA-256 and CRC-32, as a device runs it). */
  applyMBps: number;
  /**
   * The whole apply as a host service runs it (the OTA cloud checking what it made, a Linux-host
   * device): a warm process, node's SHA-256 and zlib's CRC-32 injected. Seconds of the best pass.
   */
  hostApplySeconds: number;
  /** The chunk loop alone (LZMA, command stream, CRC-32 per chunk; no SHA-256), MB/s of NEW. */
  loopMBps: number;
  /** The patcher's SHA-256 alone over OLD and NEW, in MB/s of NEW (explains part of the apply time). */
  hashMBps: number;
  lzmaBytes: number;
  newBytes: number;
}

/**
 * Best pass of `fn` after one warm-up pass, running passes until `budgetMs` is spent (at least
 * `minPasses`); `setup` runs before each pass, outside the timing.
 */
function bestSeconds(fn: () => void, budgetMs: number, setup: () => void = () => {}, minPasses = 3): number {
  setup();
  fn();
  let best = Infinity;
  const start = performance.now();
  for (let pass = 0; pass < minPasses || performance.now() - start < budgetMs; pass++) {
    setup();
    const t0 = performance.now();
    fn();
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  return best;
}

/** Decodes every record of `pkg`; returns the number of decompressed bytes. */
function decodeAllRecords(pkg: Uint8Array, decoder: LzmaDecoder, out: Uint8Array): number {
  const h = parseHeader(pkg);
  let total = 0;
  for (const c of h.chunks) {
    const start = recordsOffset(h) + c.recordOffset;
    decoder.reset(c.rawLength);
    decoder.feed(pkg, start, start + c.recordLength, true);
    let got = 0;
    while (got < c.rawLength) {
      const n = decoder.read(out, got, c.rawLength - got);
      if (n === 0) throw new Error('LZMA decoder stalled with its whole input fed');
      got += n;
    }
    decoder.read(out, got, 0);
    if (!decoder.done) throw new Error('LZMA stream did not end with its record');
    total += got;
  }
  return total;
}

/**
 * The chunk loop the way applyPackage runs it, minus SHA-256: every chunk restored by one ChunkDecoder
 * (LZMA, command stream, CRC-32 check) from a source that, for inplace, is the partition the earlier
 * chunks were written back into.
 */
function chunkLoop(h: PackageHeader, pkg: Uint8Array, partition: Uint8Array, source: Uint8Array): number {
  const decoder = new ChunkDecoder(h, memorySource(source));
  // In place a chunk is written over its region once the next one is decoded (the device keeps it in a
  // backup slot meanwhile); `waiting` stands in for that slot.
  const waiting = new Uint8Array(h.splitSize);
  let pending = -1;
  let pendingLength = 0;
  let total = 0;
  h.chunks.forEach((c, i) => {
    const base = recordsOffset(h) + c.recordOffset;
    const out = decoder.decodeChunk(i, c, (off, dst, dstOff, len) => dst.set(pkg.subarray(base + off, base + off + len), dstOff));
    if (pending >= 0) partition.set(waiting.subarray(0, pendingLength), pending * h.splitSize);
    waiting.set(out);
    pending = i;
    pendingLength = out.length;
    total += out.length;
  });
  if (pending >= 0) partition.set(waiting.subarray(0, pendingLength), pending * h.splitSize);
  return total;
}

export function measureThroughput(oldPath: string, pkgPath: string, budgetMs: number): ThroughputRow {
  const old = new Uint8Array(readFileSync(oldPath));
  const pkg = new Uint8Array(readFileSync(pkgPath));
  const h = parseHeader(pkg);
  const decoder = new LzmaDecoder(h.lzma);
  let maxRaw = 0;
  for (const c of h.chunks) maxRaw = Math.max(maxRaw, c.rawLength);
  const out = new Uint8Array(maxRaw);
  const lzmaBytes = decodeAllRecords(pkg, decoder, out);
  const lzmaSec = bestSeconds(() => decodeAllRecords(pkg, decoder, out), budgetMs);
  let newBytes = 0;
  const applySec = bestSeconds(() => {
    newBytes = applyPackage(old, pkg).image.length;
  }, budgetMs);
  const neu = applyPackage(old, pkg).image;
  const hostApplySeconds = bestSeconds(() => {
    if (applyPackage(old, pkg, { sha256: nodeSha256, crc32: nodeCrc32 }).image.length !== neu.length) throw new Error('host apply gave another length');
  }, budgetMs);
  if (Buffer.compare(applyPackage(old, pkg, { sha256: nodeSha256, crc32: nodeCrc32 }).image, neu) !== 0) throw new Error('host apply did not restore NEW');
  const oldSrc = memorySource(old);
  const newSrc = memorySource(neu);
  const hashSec = bestSeconds(() => {
    hashSource(oldSrc, old.length);
    hashSource(newSrc, neu.length);
  }, budgetMs);
  // inplace reads the partition being overwritten; ab reads OLD and writes elsewhere.
  const partition = new Uint8Array(Math.max(old.length, h.newSize));
  const reset = (): void => {
    partition.fill(0xff).set(old);
  };
  const source = h.mode === 'inplace' ? partition : old;
  let loopBytes = 0;
  const loopSec = bestSeconds(() => {
    loopBytes = chunkLoop(h, pkg, partition, source);
  }, budgetMs, reset);
  if (loopBytes !== neu.length || Buffer.compare(partition.subarray(0, neu.length), neu) !== 0) throw new Error('chunk loop did not restore NEW');
  return {
    lzmaMBps: lzmaBytes / lzmaSec / 1e6,
    applyMBps: newBytes / applySec / 1e6,
    hostApplySeconds,
    loopMBps: loopBytes / loopSec / 1e6,
    hashMBps: neu.length / hashSec / 1e6,
    lzmaBytes,
    newBytes,
  };
}
