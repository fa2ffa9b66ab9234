// Which lzma-native options really produce a stream for a given dictionary size, and proof that the
// decoder's dictionary of exactly that size is enough (and that a smaller one fails cleanly).
import { describe, expect, it } from 'vitest';
import { LzmaDecoder, LzmaError, type LzmaProps } from '../src/lzma-decoder.js';
import { drive, firstDiff, randomBytes } from './helpers/lzma-drive.js';
import { lzmaNativeEncode, lzmaNativeEncodeWith, type EncodeParams } from './helpers/lzma-oracle.js';

/** Random data in which 120-byte segments repeat at distances `dists` (cycled): the only matches. */
function repeatsAt(dists: number[], n: number, seed: number): Uint8Array {
  const d = randomBytes(n, seed);
  const seg = 120;
  let k = 0;
  for (let i = Math.max(...dists); i + seg <= n; i += 3 * seg, k++) {
    const dist = dists[k % dists.length];
    d.copyWithin(i, i - dist, i - dist + seg);
  }
  return d;
}

function decode(stream: Uint8Array, data: Uint8Array, props: LzmaProps): Uint8Array {
  return drive(new LzmaDecoder(props), stream, data.length, { piece: () => 4000, read: () => 5000 }).output;
}

const P = { lc: 3, lp: 0, pb: 2 };

describe('lzma-native dictionary size', () => {
  for (const dictSize of [4096, 5000, 16384, 65536]) {
    for (const effort of ['fast', 'normal'] as const) {
      it(`dictSize ${dictSize} (${effort}): uses distances up to exactly ${dictSize}; a ${dictSize}-byte decoder suffices`, async () => {
        const dists = [dictSize, dictSize - 1, dictSize - 3, dictSize - 16];
        const data = repeatsAt(dists, Math.floor(2.2 * dictSize), dictSize);
        const p: EncodeParams = { ...P, dictSize, effort };
        const stream = await lzmaNativeEncode(data, p);
        // The repeats were found (random data would not shrink)...
        expect(stream.length).toBeLessThan(data.length * 0.9);
        // ...and decode with a dictionary of exactly dictSize bytes.
        expect(firstDiff(decode(stream, data, { ...P, dictSize }), data)).toBe(-1);
        if (dictSize > 4096) {
          // One byte less is not enough: the stream really uses distance dictSize, and the decoder
          // refuses it instead of reading stale dictionary bytes.
          expect(() => decode(stream, data, { ...P, dictSize: dictSize - 1 })).toThrow(
            new RegExp(`distance ${dictSize} exceeds the ${dictSize - 1}-byte dictionary`),
          );
        }
      });
    }
  }

  it('a stream that needs more than D is rejected by a D-byte decoder with a clear error', async () => {
    const D = 16384;
    const data = repeatsAt([Math.floor(1.5 * D)], 3 * D, 3);
    const stream = await lzmaNativeEncode(data, { ...P, dictSize: 2 * D, effort: 'normal' });
    expect(firstDiff(decode(stream, data, { ...P, dictSize: 2 * D }), data)).toBe(-1);
    let err: unknown;
    try {
      decode(stream, data, { ...P, dictSize: D });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LzmaError);
    expect((err as Error).message).toMatch(/match distance \d+ exceeds the 16384-byte dictionary/);
  });

  it('"dict_size" is ignored and "preset" overrides dictSize (the dishonest combinations)', async () => {
    const D = 4096;
    const data = repeatsAt([3 * D], 6 * D, 5);
    const big = { ...P, dictSize: 1 << 23 };
    // Honest: camelCase dictSize, no preset -> the 3*D repeats cannot be used, a D decoder works.
    const honest = await lzmaNativeEncodeWith(data, { ...P, dictSize: D });
    expect(firstDiff(decode(honest, data, { ...P, dictSize: D }), data)).toBe(-1);
    // `dict_size` (snake case) is not read: lzma-native's default 8 MiB dictionary is used.
    // `preset` (even together with dictSize) replaces the dictionary by the preset's (6 -> 8 MiB, 0 -> 256 KiB).
    const dishonest: Record<string, number>[] = [{ dict_size: D }, { dictSize: D, preset: 6 }, { dictSize: D, preset: 0 }];
    for (const opts of dishonest) {
      const s = await lzmaNativeEncodeWith(data, { ...P, ...opts });
      expect(s.length).toBeLessThan(honest.length * 0.9); // it used the far repeats
      expect(() => decode(s, data, { ...P, dictSize: D })).toThrow(/exceeds the 4096-byte dictionary/);
      expect(firstDiff(decode(s, data, big), data)).toBe(-1);
    }
  });

  it('"preset" also overrides lc/lp/pb', async () => {
    const data = repeatsAt([1000], 20000, 8);
    const asked = { lc: 0, lp: 2, pb: 0, dictSize: 65536 };
    const s = await lzmaNativeEncodeWith(data, { ...asked, preset: 6 });
    // The stream is lc=3 lp=0 pb=2 (the preset's), not what was asked for.
    expect(firstDiff(decode(s, data, { ...P, dictSize: 1 << 23 }), data)).toBe(-1);
    let wrong: Uint8Array | null = null;
    try {
      wrong = decode(s, data, asked);
    } catch (e) {
      expect(e).toBeInstanceOf(LzmaError);
    }
    if (wrong !== null) expect(firstDiff(wrong, data)).not.toBe(-1);
    // Without a preset the asked-for props are used.
    const honest = await lzmaNativeEncode(data, { ...asked, effort: 'normal' });
    expect(firstDiff(decode(honest, data, asked), data)).toBe(-1);
  });
});
