// In-process throughput of the LZMA decoder alone, in MB/s of output (1 MB = 10^6 bytes).
// Usage (after a build): node bench/dist/lzma-throughput.js [corpus-dir]   (LZB_BYTES: bytes per set, default 40e6)
// Streams are made with lzma-native using the generator's settings; each data set is decoded from
// one buffer and from 1 KiB pieces (the device's record scratch), reading 4 KiB at a time.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compressRaw } from '@otadiff/diff-gen';
import { LzmaDecoder } from '@otadiff/patch-apply';
import { espDir } from './corpus.js';

const PROPS = { lc: 3, lp: 0, pb: 2, dictSize: 64 * 1024 };
const READ_SIZE = 4096;

/** The generator's own compressor (honest dictionary size, same encoder settings). */
const compress = (data: Uint8Array): Promise<Uint8Array> => compressRaw(data, PROPS);

function xorshift(seed: number): () => number {
  let x = seed;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

/** Patch-like command stream: long mostly-zero diff runs with sparse changes, some literal "extra" bytes. */
function patchLike(n: number, extraSource: Uint8Array): Uint8Array {
  const r = xorshift(12345);
  const out = new Uint8Array(n);
  let i = 0;
  while (i < n) {
    const diffLen = Math.min(n - i, 2000 + (r() % 30000));
    for (let k = 0; k < diffLen; k++) {
      const x = r();
      if (x % 23 === 0) out[i + k] = x >>> 24; // changed byte
      else if (x % 97 === 1) out[i + k] = 4; // relocated address delta
    }
    i += diffLen;
    const extraLen = Math.min(n - i, r() % 3000);
    const from = r() % Math.max(1, extraSource.length - extraLen);
    out.set(extraSource.subarray(from, from + extraLen), i);
    i += extraLen;
  }
  return out;
}

function decodeOnce(dec: LzmaDecoder, stream: Uint8Array, size: number, out: Uint8Array, piece: number): void {
  dec.reset(size);
  let inPos = 0;
  let got = 0;
  while (!dec.done) {
    if (dec.needsInput) {
      const end = Math.min(stream.length, inPos + piece);
      dec.feed(stream, inPos, end, end === stream.length);
      inPos = end;
    }
    const want = Math.min(READ_SIZE, size - got);
    got += dec.read(out, got % (out.length - READ_SIZE), want);
  }
  if (got !== size || dec.inputConsumed !== stream.length) throw new Error('decode mismatch');
}

/** Best of 5 passes, as MB/s of wall time and of process CPU time (steadier on a shared machine). */
function mbps(dec: LzmaDecoder, stream: Uint8Array, size: number, piece: number): { wall: number; cpu: number } {
  const out = new Uint8Array(1 << 20);
  const passBytes = Number(process.env.LZB_BYTES ?? 40e6) / 5;
  decodeOnce(dec, stream, size, out, piece); // warm-up
  let wall = 0;
  let cpu = 0;
  for (let pass = 0; pass < 5; pass++) {
    let bytes = 0;
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    while (bytes < passBytes) {
      decodeOnce(dec, stream, size, out, piece);
      bytes += size;
    }
    const c = process.cpuUsage(c0);
    wall = Math.max(wall, bytes / ((performance.now() - t0) / 1000) / 1e6);
    cpu = Math.max(cpu, bytes / ((c.user + c.system) / 1e6) / 1e6);
  }
  return { wall, cpu };
}

async function main(): Promise<void> {
  const corpus = process.argv[2] ?? espDir;
  const fw = join(corpus, 'at-v3.0.6.bin');
  const firmware = existsSync(fw) ? new Uint8Array(readFileSync(fw)) : patchLike(450_000, new Uint8Array(64).fill(7));
  const r = xorshift(99);
  const random = new Uint8Array(1 << 20);
  for (let i = 0; i < random.length; i++) random[i] = r() & 0xff;
  const sets: [string, Uint8Array][] = [
    ['patch-like (sparse diff + extra)', patchLike(2 << 20, firmware)],
    ['firmware image', firmware],
    ['zeros', new Uint8Array(4 << 20)],
    ['random (incompressible)', random],
  ];
  const dec = new LzmaDecoder(PROPS);
  process.stdout.write(`LZMA decode, lc=${PROPS.lc} lp=${PROPS.lp} pb=${PROPS.pb} dict=${PROPS.dictSize}, Node ${process.version}\n`);
  for (const [name, data] of sets) {
    const stream = await compress(data);
    const whole = mbps(dec, stream, data.length, stream.length);
    const pieces = mbps(dec, stream, data.length, 1024);
    const f = (m: { wall: number; cpu: number }) => `${m.wall.toFixed(1)} MB/s (${m.cpu.toFixed(1)} per CPU-s)`;
    process.stdout.write(
      `${name.padEnd(34)} ${String(data.length).padStart(8)} -> ${String(stream.length).padStart(8)} bytes: ` +
        `one buffer ${f(whole)}, 1 KiB pieces ${f(pieces)}\n`,
    );
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
