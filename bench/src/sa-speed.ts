// Suffix array and matcher speed on large inputs: SA-IS and the LCP array on a
// 10 MB firmware-like buffer and on 10 MB of random bytes, then matchChunk over
// every 64 KiB chunk of an edited copy, in ab and inplace mode.
//
//   node bench/dist/sa-speed.js [megabytes]
import { buildLcpArray, buildSuffixArray, indexImage, matchChunk, type ChunkWindow } from '@otadiff/diff-gen';

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/** Random runs, 0xFF padding, small-vocabulary "code" and copies of earlier stretches. */
function structured(n: number, seed: number): Uint8Array {
  const r = rng(seed);
  const d = new Uint8Array(n);
  for (let i = 0; i < n; ) {
    const kind = r() % 4;
    const len = 64 + (r() % 4096);
    if (kind === 0 || i < 4096) for (let j = 0; j < len && i < n; j++) d[i++] = r() & 0xff;
    else if (kind === 1) for (let j = 0; j < len && i < n; j++) d[i++] = 0xff;
    else if (kind === 2) for (let j = 0; j < len && i < n; j++) d[i++] = (r() % 24) * 7;
    else {
      const src = r() % (i - 64);
      for (let j = 0; j < len && i < n; j++) d[i++] = d[src + j];
    }
  }
  return d;
}

/** A new version: sparse byte changes, random insertions and the odd deletion. */
function edited(old: Uint8Array, seed: number): Uint8Array {
  const r = rng(seed);
  const out = new Uint8Array(old.length + old.length / 20);
  let o = 0;
  for (let i = 0; i < old.length && o < out.length; ) {
    const step = Math.min(old.length - i, out.length - o, 50_000 + (r() % 100_000));
    out.set(old.subarray(i, i + step), o);
    for (let k = 0; k < step; k += 50 + (r() % 400)) out[o + k] ^= 1 + (r() & 3);
    o += step;
    i += step;
    const ins = r() % 400;
    for (let k = 0; k < ins && o < out.length; k++) out[o++] = r() & 0xff;
    if (r() % 3 === 0) i += r() % 2000;
  }
  return out.subarray(0, o);
}

function time<T>(f: () => T): [T, number] {
  const t0 = performance.now();
  const v = f();
  return [v, performance.now() - t0];
}

const mb = Number(process.argv[2] ?? 10);
if (!Number.isFinite(mb) || mb <= 0 || mb > 1000) throw new Error('size in megabytes must be in (0, 1000]');
const n = Math.round(mb * 1_000_000);
const random = new Uint8Array(n);
const r = rng(99);
for (let i = 0; i < n; i++) random[i] = r() & 0xff;
const old = structured(n, 7);

for (const [name, data] of [
  ['structured', old],
  ['random', random],
] as const) {
  const [sa, saMs] = time(() => buildSuffixArray(data));
  const [, lcpMs] = time(() => buildLcpArray(data, sa));
  console.log(`${name} ${mb} MB: SA-IS ${saMs.toFixed(0)} ms, LCP ${lcpMs.toFixed(0)} ms`);
}

const neu = edited(old, 8);
const [oldIdx, oldMs] = time(() => indexImage(old));
const [newIdx, newMs] = time(() => indexImage(neu));
console.log(`index old+new (SA + LCP): ${(oldMs + newMs).toFixed(0)} ms`);
const S = 64 * 1024;
for (const mode of ['ab', 'inplace'] as const) {
  let ops = 0;
  const [, ms] = time(() => {
    for (let start = 0; start < neu.length; start += S) {
      const target = neu.subarray(start, Math.min(neu.length, start + S));
      const B = mode === 'inplace' ? start : 0;
      const w: ChunkWindow = { old: oldIdx, newer: B > 0 ? newIdx : undefined, boundary: B, length: Math.max(B, old.length) };
      ops += matchChunk(target, w, { startPos: Math.min(start, w.length) }).length;
    }
  });
  console.log(`matchChunk, all ${Math.ceil(neu.length / S)} chunks, ${mode}: ${ms.toFixed(0)} ms (${ops} ops)`);
}
