// The device-side LZMA encoder that packs backup-ring records: its streams decode to the input with our
// decoder and with liblzma's (lzma-native), its output stays within the limit it is given, and firmware
// sectors pack to about three quarters.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { LzmaDecoder } from '../src/lzma-decoder.js';
import { LZMA_PACK_MAX, LZMA_PACK_PROPS, LzmaPacker } from '../src/lzma-encoder.js';
import { drive, randomBytes } from './helpers/lzma-drive.js';
import { lzmaRaw } from './helpers/lzma-oracle.js';

const CORPUS = new URL('../../../corpus/esp8266-at/', import.meta.url);
const RUNS = Number(process.env.OTADIFF_FUZZ_RUNS ?? 300);

function unpack(stream: Uint8Array, n: number): Uint8Array {
  return drive(new LzmaDecoder(LZMA_PACK_PROPS), stream, n, { piece: () => 100, read: () => 700 }).output;
}

/** liblzma's raw decoder on a stream without an end marker: it decodes past the end, so only the first n bytes count. */
function liblzmaUnpack(stream: Uint8Array, n: number): Promise<Uint8Array> {
  return new Promise((resolve) => {
    const s = lzmaRaw.createStream('rawDecoder', {
      filters: [{ id: lzmaRaw.FILTER_LZMA1, options: { dictSize: LZMA_PACK_MAX, lc: 0, lp: 0, pb: 0 } }],
      synchronous: true,
    });
    const parts: Buffer[] = [];
    const done = () => resolve(new Uint8Array(Buffer.concat(parts)).subarray(0, n));
    s.on('data', (b: Buffer) => parts.push(b));
    s.on('error', done);
    s.on('end', done);
    s.end(Buffer.from(stream));
  });
}

/** Bytes with structure: runs, repeats at varied distances, a small alphabet. */
const structured = fc
  .array(
    fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 40 }),
      fc.record({ byte: fc.integer({ min: 0, max: 255 }), n: fc.integer({ min: 1, max: 300 }) }).map(({ byte, n }) => new Uint8Array(n).fill(byte)),
      fc.record({ back: fc.integer({ min: 1, max: 4096 }), n: fc.integer({ min: 2, max: 400 }) }),
    ),
    { maxLength: 60 },
  )
  .map((parts) => {
    const out: number[] = [];
    for (const p of parts) {
      if (p instanceof Uint8Array) out.push(...p);
      else if (out.length > 0) for (let i = 0; i < p.n; i++) out.push(out[out.length - Math.min(p.back, out.length)]);
    }
    return Uint8Array.from(out.slice(0, LZMA_PACK_MAX));
  });

describe('LzmaPacker', () => {
  it('packs any input up to 4096 bytes into a stream our decoder reads back exactly', () => {
    const packer = new LzmaPacker();
    fc.assert(
      fc.property(fc.oneof(structured, fc.uint8Array({ maxLength: LZMA_PACK_MAX })), (data) => {
        const stream = packer.pack(data, 2 * LZMA_PACK_MAX);
        expect(stream).not.toBeNull();
        expect(unpack(stream!, data.length)).toEqual(data);
      }),
      { numRuns: RUNS },
    );
  });

  it('never returns a stream longer than its limit, and null when the input does not fit it', () => {
    const packer = new LzmaPacker();
    fc.assert(
      fc.property(structured, fc.integer({ min: 1, max: LZMA_PACK_MAX }), (data, limit) => {
        const stream = packer.pack(data, limit);
        if (stream !== null) {
          expect(stream.length).toBeLessThanOrEqual(limit);
          expect(unpack(stream, data.length)).toEqual(data);
        } else expect(packer.pack(data, 2 * LZMA_PACK_MAX)!.length).toBeGreaterThan(limit);
      }),
      { numRuns: RUNS },
    );
    expect(packer.pack(randomBytes(4096, 9), 4096)).toBeNull(); // noise does not pack
  });

  it('writes standard streams: liblzma decodes them', async () => {
    const packer = new LzmaPacker();
    const fw = new Uint8Array(readFileSync(new URL('at-v3.0.4.bin', CORPUS)));
    for (const at of [0, 40960, 200704, 405504]) {
      const data = fw.slice(at, at + 4096);
      const stream = packer.pack(data, 8192)!.slice();
      expect(await liblzmaUnpack(stream, data.length)).toEqual(data);
    }
  });

  it('packs ESP8266 firmware sectors to under 80% (liblzma fast mode: about 75%)', () => {
    const packer = new LzmaPacker();
    const fw = new Uint8Array(readFileSync(new URL('at-v2.2.0.bin', CORPUS)));
    let packed = 0;
    for (let at = 0; at + 4096 <= fw.length; at += 4096) packed += packer.pack(fw.subarray(at, at + 4096), 8192)!.length;
    expect(packed / (fw.length - (fw.length % 4096))).toBeLessThan(0.8);
  });

  it('refuses more than 4096 bytes', () => {
    expect(() => new LzmaPacker().pack(new Uint8Array(LZMA_PACK_MAX + 1), 9000)).toThrow(RangeError);
  });
});
