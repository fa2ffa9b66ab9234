// The data behind the decoder's warm-up stream (lzma-warmup-stream.ts, made by
// scripts/make-lzma-warmup.mjs, which copies these props and length into it: the decoder imports only
// that file): deterministic, about 10 KB, and shaped so that its LZMA encoding
// uses every kind of symbol: plain and matched literals, matches of every length coder branch and
// distance slot range (direct bits included), all four repeated distances, short reps, runs of one
// byte, long non-overlapping copies, copies across the wrap of a 4 KiB dictionary.
import { Prng } from './flash/prng.js';
import type { LzmaProps } from './lzma-decoder.js';

export const WARMUP_PROPS: LzmaProps = { lc: 1, lp: 0, pb: 0, dictSize: 4096 };
export const WARMUP_LENGTH = 10_000;

export function warmupData(): Uint8Array {
  const prng = new Prng(12345);
  const rnd = () => prng.nextU32();
  const d = new Uint8Array(WARMUP_LENGTH);
  const n = d.length;
  let i = 0;
  // Where the next copy that crosses the 4 KiB dictionary's wrap goes (its source is before the wrap).
  let wrapAt = 4096;
  while (i < n) {
    if (i >= wrapAt + 4) {
      const dist = 150 + (i - wrapAt);
      for (let j = 0; j < 250 && i < n; j++, i++) d[i] = d[i - dist];
      wrapAt += 4096;
      continue;
    }
    const kind = rnd() % 7;
    if (kind === 0 || i < 64) {
      // Random literals.
      const len = 1 + (rnd() % 40);
      for (let j = 0; j < len && i < n; j++) d[i++] = rnd() & 0xff;
    } else if (kind === 1) {
      // A run of zeros: matches at distance 1, some longer than the fill threshold.
      const len = 2 + (rnd() % 300);
      for (let j = 0; j < len && i < n; j++) d[i++] = 0;
    } else if (kind === 2) {
      // A copy from anywhere in the last 4000 bytes, up to 200 long.
      const dist = 1 + (rnd() % Math.min(i, 4000));
      const len = 2 + (rnd() % 200);
      for (let j = 0; j < len && i < n; j++, i++) d[i] = d[i - dist];
    } else if (kind === 3) {
      // Records with one changed byte each: the encoder alternates between repeated distances.
      const dist = 8 * (1 + (rnd() % 4));
      for (let r = 0; r < 20 && i < n; r++) {
        for (let j = 0; j < 7 && i < n; j++, i++) d[i] = i >= dist ? d[i - dist] : 0;
        if (i < n) d[i++] = rnd() & 0xff;
      }
    } else if (kind === 4) {
      // A short copy followed by a byte one bit away from the next one in the copy (matched literal).
      const dist = 1 + (rnd() % Math.min(i, 4000));
      const len = 2 + (rnd() % 8);
      for (let j = 0; j < len && i < n; j++, i++) d[i] = d[i - dist];
      if (i < n) {
        d[i] = d[i - dist] ^ (1 << (rnd() % 8));
        i++;
      }
    } else if (kind === 5 && i >= 4000) {
      // Short copies cycling through four distances, a literal between them: reps 1 to 3.
      const dists = [1 + (rnd() % 4000), 1 + (rnd() % 4000), 1 + (rnd() % 4000), 1 + (rnd() % 4000)];
      for (let k = 0; k < 24 && i < n; k++) {
        const dist = dists[k % 4 === 0 ? rnd() % 4 : k % 4];
        const len = 3 + (rnd() % 4);
        for (let j = 0; j < len && i < n; j++, i++) d[i] = d[i - dist];
        if (i < n) d[i++] = rnd() & 0xff;
      }
    } else {
      // Text-like bytes.
      const len = 1 + (rnd() % 4);
      for (let j = 0; j < len && i < n; j++) d[i++] = 0x20 + (rnd() % 64);
    }
  }
  return d;
}
