import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  LzmaDecoder,
  LzmaError,
  decodePropsByte,
  encodePropsByte,
  lzmaDecoderRamBytes,
  type LzmaProps,
} from '../src/lzma-decoder.js';
import { drive, firstDiff, mixedData, randomBytes, rng } from './helpers/lzma-drive.js';
import { lzmaNativeDecode, lzmaNativeEncode, type EncodeParams } from './helpers/lzma-oracle.js';
import { TinyLzmaEncoder, tinyCompress } from './helpers/tiny-lzma-encoder.js';

const CORPUS = new URL('../../../corpus/esp8266-at', import.meta.url).pathname;

/** All lc/lp/pb with lc+lp <= 4 and pb <= 4. */
const ALL_PROPS: { lc: number; lp: number; pb: number }[] = [];
for (let lc = 0; lc <= 4; lc++) for (let lp = 0; lc + lp <= 4; lp++) for (let pb = 0; pb <= 4; pb++) ALL_PROPS.push({ lc, lp, pb });

describe('properties byte', () => {
  it('round-trips every valid byte', () => {
    for (let b = 0; b <= 224; b++) {
      const p = decodePropsByte(b);
      expect(p.lc).toBeLessThanOrEqual(8);
      expect(p.lp).toBeLessThanOrEqual(4);
      expect(p.pb).toBeLessThanOrEqual(4);
      expect(encodePropsByte(p)).toBe(b);
    }
    expect(decodePropsByte(0x5d)).toEqual({ lc: 3, lp: 0, pb: 2 });
  });

  it('rejects out-of-range bytes and props', () => {
    for (const b of [225, 255, -1, 1.5, NaN]) expect(() => decodePropsByte(b)).toThrow(LzmaError);
    expect(() => encodePropsByte({ lc: 9, lp: 0, pb: 0 })).toThrow(LzmaError);
    expect(() => encodePropsByte({ lc: 0, lp: 5, pb: 0 })).toThrow(LzmaError);
    expect(() => encodePropsByte({ lc: 0, lp: 0, pb: 5 })).toThrow(LzmaError);
  });
});

describe('construction', () => {
  it('validates lc/lp/pb and the dictionary size', () => {
    const ok: LzmaProps = { lc: 3, lp: 0, pb: 2, dictSize: 4096 };
    expect(() => new LzmaDecoder(ok)).not.toThrow();
    expect(() => new LzmaDecoder({ ...ok, dictSize: 1 << 28 })).not.toThrow();
    const bad: LzmaProps[] = [
      { ...ok, lc: 5 },
      { ...ok, lc: 3, lp: 2 },
      { ...ok, lp: 5 },
      { ...ok, pb: 5 },
      { ...ok, lc: -1 },
      { ...ok, pb: 1.5 },
      { ...ok, dictSize: 4095 },
      { ...ok, dictSize: 2 ** 28 + 1 },
      { ...ok, dictSize: 5000.5 },
    ];
    for (const p of bad) {
      expect(() => new LzmaDecoder(p)).toThrow(LzmaError);
      expect(() => lzmaDecoderRamBytes(p)).toThrow(LzmaError);
    }
  });

  it('reports the RAM it allocates: dictionary + probabilities + a small constant', () => {
    const a = lzmaDecoderRamBytes({ lc: 0, lp: 0, pb: 0, dictSize: 4096 });
    const b = lzmaDecoderRamBytes({ lc: 3, lp: 0, pb: 2, dictSize: 65536 });
    // 1846 fixed probabilities + 0x300 per literal coder, 2 bytes each.
    expect(a - 4096).toBeGreaterThanOrEqual(2 * (1846 + 0x300));
    expect(a - 4096).toBeLessThan(2 * (1846 + 0x300) + 1024);
    expect(b - 65536).toBeGreaterThanOrEqual(2 * (1846 + 0x300 * 8));
    expect(b - 65536).toBeLessThan(2 * (1846 + 0x300 * 8) + 1024);
  });

  it('must be reset before use and rejects bad arguments', () => {
    const dec = new LzmaDecoder({ lc: 3, lp: 0, pb: 2, dictSize: 4096 });
    expect(() => dec.read(new Uint8Array(4), 0, 4)).toThrow(LzmaError);
    expect(() => dec.reset(-1)).toThrow(LzmaError);
    expect(() => dec.reset(1.5)).toThrow(LzmaError);
    dec.reset(10);
    expect(dec.needsInput).toBe(true);
    expect(dec.done).toBe(false);
    expect(dec.read(new Uint8Array(10), 0, 10)).toBe(0);
    expect(() => dec.read(new Uint8Array(10), 5, 6)).toThrow(LzmaError);
    expect(() => dec.feed(new Uint8Array(10), 4, 2, false)).toThrow(LzmaError);
    expect(() => dec.feed(new Uint8Array(10), 0, 11, false)).toThrow(LzmaError);
  });
});

describe('against lzma-native', () => {
  const data = mixedData(9000, 7);
  let streams: { p: EncodeParams; stream: Uint8Array }[] = [];
  beforeAll(async () => {
    streams = await Promise.all(
      ALL_PROPS.map(async (lp) => {
        // 4104 = 8 mod 16: after a wrap the position low bits (lp, pb) no longer follow the
        // dictionary index, which must be accounted for.
        const p = { ...lp, dictSize: 4104 };
        return { p, stream: await lzmaNativeEncode(data, p) };
      }),
    );
  });

  it('decodes every lc/lp/pb combination (dictionary of 4104 bytes, wrapping), random pieces', () => {
    expect(streams).toHaveLength(75);
    const r = rng(1);
    for (const { p, stream } of streams) {
      const dec = new LzmaDecoder(p);
      const res = drive(dec, stream, data.length, { piece: () => r() % 700, read: () => 1 + (r() % 3000) });
      expect(firstDiff(res.output, data)).toBe(-1);
      expect(res.inputConsumed).toBe(stream.length);
    }
  });

  it('random and structured data, all props, several dictionaries, random splits (property)', async () => {
    const bytes = (max: number) => fc.uint8Array({ minLength: 0, maxLength: max });
    const runs = fc
      .array(fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: 400 })), { maxLength: 60 })
      .map((rs) => Uint8Array.from(rs.flatMap(([b, n]) => Array<number>(n).fill(b))));
    const text = fc
      .array(fc.constantFrom('the ', 'firmware ', 'update ', 'AT+RST\r\n', 'OK ', '0x4010', '\n', 'ERROR '), { maxLength: 2000 })
      .map((ws) => new TextEncoder().encode(ws.join('')));
    const repeats = fc
      .tuple(bytes(2000), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 300 }), fc.nat(255)), { maxLength: 80 }))
      .map(([seed, copies]) => {
        const out = Array.from(seed.length ? seed : [1]);
        for (const [from, len, x] of copies) {
          const start = from % out.length;
          for (let k = 0; k < len; k++) out.push(out[start + k] ?? x);
          out.push(x);
        }
        return Uint8Array.from(out);
      });
    const mixed = fc.tuple(fc.nat(60000), fc.integer({ min: 0, max: 1 << 30 })).map(([n, seed]) => mixedData(n, seed));
    const dataArb = fc.oneof(bytes(6000), runs, text, repeats, mixed);
    await fc.assert(
      fc.asyncProperty(
        dataArb,
        fc.constantFrom(...ALL_PROPS),
        fc.constantFrom(4096, 4099, 5000, 16384, 65536, 1 << 20),
        fc.integer({ min: 0, max: 1 << 30 }),
        async (data, lp, dictSize, seed) => {
          const p = { ...lp, dictSize };
          const stream = await lzmaNativeEncode(data, p);
          const r = rng(seed);
          const maxPiece = 1 + (r() % 3000);
          const maxRead = 1 + (r() % 5000);
          const res = drive(new LzmaDecoder(p), stream, data.length, {
            piece: () => r() % maxPiece,
            read: () => r() % maxRead,
            separateFinal: (r() & 1) === 1,
          });
          expect(firstDiff(res.output, data)).toBe(-1);
          expect(res.inputConsumed).toBe(stream.length);
        },
      ),
      { seed: 20240611, numRuns: 120 },
    );
  });

  it('gives identical output for an input split at every byte position, and for 1-byte feeds', async () => {
    const data = mixedData(700, 3);
    const p = { lc: 3, lp: 0, pb: 2, dictSize: 4096 };
    const stream = await lzmaNativeEncode(data, p);
    const dec = new LzmaDecoder(p);
    for (let k = 0; k <= stream.length; k++) {
      let call = 0;
      const res = drive(dec, stream, data.length, { piece: () => (call++ === 0 ? k : stream.length) });
      expect(firstDiff(res.output, data)).toBe(-1);
      expect(res.inputConsumed).toBe(stream.length);
    }
    for (const read of [1, 2, 7, 1000]) {
      const res = drive(dec, stream, data.length, { piece: () => 1, read: () => read });
      expect(firstDiff(res.output, data)).toBe(-1);
    }
    // Two split points: covers the stash being topped up from a piece smaller than one symbol.
    const r = rng(99);
    for (let t = 0; t < 300; t++) {
      const a = r() % 40;
      const b = r() % 40;
      let call = 0;
      const res = drive(dec, stream, data.length, { piece: () => [a, b][call++] ?? 1e9, read: () => 1 + (r() % 50) });
      expect(firstDiff(res.output, data)).toBe(-1);
    }
  });

  it('handles a 1-byte feed of a larger stream with 1 MiB dictionary, and 0-byte reads/feeds', async () => {
    const data = mixedData(30000, 11);
    const p = { lc: 0, lp: 2, pb: 2, dictSize: 1 << 20 };
    const stream = await lzmaNativeEncode(data, p);
    const r = rng(5);
    const res = drive(new LzmaDecoder(p), stream, data.length, {
      piece: () => (r() % 3 === 0 ? 0 : 1),
      read: () => r() % 4,
    });
    expect(firstDiff(res.output, data)).toBe(-1);
    expect(res.inputConsumed).toBe(stream.length);
  });

  it('decodes empty and one-byte payloads', async () => {
    for (const data of [new Uint8Array(0), new Uint8Array([0x41])]) {
      const p = { lc: 3, lp: 0, pb: 2, dictSize: 4096 };
      const stream = await lzmaNativeEncode(data, p);
      const dec = new LzmaDecoder(p);
      for (let k = 0; k <= stream.length; k++) {
        let call = 0;
        const res = drive(dec, stream, data.length, { piece: () => (call++ === 0 ? k : 1e9) });
        expect(firstDiff(res.output, data)).toBe(-1);
        expect(res.inputConsumed).toBe(stream.length);
      }
    }
  });

  it('reuses one decoder across streams (reset) and long matches across tiny reads', async () => {
    const p = { lc: 1, lp: 3, pb: 4, dictSize: 4096 };
    const dec = new LzmaDecoder(p);
    const a = new Uint8Array(50000); // long runs -> 273-byte matches
    a.set(randomBytes(100, 1), 25000);
    const b = mixedData(20000, 9);
    for (const data of [a, b, a]) {
      const stream = await lzmaNativeEncode(data, p);
      const res = drive(dec, stream, data.length, { read: () => 1 });
      expect(firstDiff(res.output, data)).toBe(-1);
      expect(dec.done).toBe(true);
      expect(dec.needsInput).toBe(false);
    }
  });
});

describe('symbols that consume many input bytes', () => {
  it('decodes a ~15-byte symbol split at every position', () => {
    // Target: a match of length 18 (high length tree value 0), distance slot 31, align bits 0000.
    // Every node on those tree paths is first trained towards the other branch (deepest node first,
    // so later batches do not undo earlier ones), so each bit of the target costs ~6 bits of range.
    const p = { lc: 3, lp: 0, pb: 2, dictSize: 1 << 17 };
    const enc = new TinyLzmaEncoder(p.lc, p.lp, p.pb);
    const r = rng(31);
    for (let i = 0; i < 70000; i++) enc.encode({ kind: 'lit', byte: r() & 0xff });
    const slots = [30, 30, 28, 24, 16, 10, 32, 32];
    const aligns = [8, 8, 4, 2, 1, 0, 1, 1];
    for (let b = 0; b < 8; b++) {
      const slot = slots[b];
      const base = (2 | (slot & 1)) * 2 ** ((slot >> 1) - 1);
      for (let i = 0; i < 130; i++) enc.encode({ kind: 'match', dist: base + aligns[b] + 1, len: 18 + (1 << b) });
    }
    const before = enc.compressedSize;
    enc.encode({ kind: 'match', dist: 3 * 2 ** 14 + 1, len: 18 });
    const symbolBytes = enc.compressedSize - before;
    expect(symbolBytes).toBeGreaterThanOrEqual(13);
    for (let i = 0; i < 40; i++) enc.encode({ kind: 'lit', byte: r() & 0xff });
    const data = Uint8Array.from(enc.data);
    const stream = enc.finish(true);
    // The decoder has read 4 bytes more than the encoder has counted (its 5-byte start vs 1).
    const symbolStart = before + 4;
    const dec = new LzmaDecoder(p);
    for (let k = symbolStart - 30; k <= symbolStart + symbolBytes + 2; k++) {
      let call = 0;
      const res = drive(dec, stream, data.length, { piece: () => (call++ === 0 ? k : 1e9), read: () => 1 << 16 });
      expect(firstDiff(res.output, data)).toBe(-1);
    }
  });
});

describe('streams without an end marker (flushed range coder)', () => {
  it('tiny encoder streams with and without EOPM decode at every split and match lzma-native', async () => {
    const data = mixedData(600, 21);
    for (const lp of [
      { lc: 3, lp: 0, pb: 2 },
      { lc: 0, lp: 4, pb: 4 },
      { lc: 4, lp: 0, pb: 0 },
    ]) {
      const p = { ...lp, dictSize: 4096 };
      const withMarker = tinyCompress(data, { ...p, endMarker: true });
      const noMarker = tinyCompress(data, { ...p, endMarker: false });
      // The independent encoder is validated by lzma-native's decoder.
      expect(firstDiff(await lzmaNativeDecode(withMarker, p), data)).toBe(-1);
      expect(noMarker.length).toBeLessThan(withMarker.length);
      const dec = new LzmaDecoder(p);
      for (const stream of [withMarker, noMarker]) {
        for (let k = 0; k <= stream.length; k++) {
          let call = 0;
          const res = drive(dec, stream, data.length, { piece: () => (call++ === 0 ? k : 1e9), read: () => 97 });
          expect(firstDiff(res.output, data)).toBe(-1);
          expect(res.inputConsumed).toBe(stream.length);
        }
      }
    }
  });

  it('random data through the tiny encoder, both endings, random splits (property)', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.uint8Array({ maxLength: 3000 }), fc.nat(8000).map((n) => mixedData(n, n))),
        fc.constantFrom(...ALL_PROPS),
        fc.boolean(),
        fc.integer({ min: 0, max: 1 << 30 }),
        (data, lp, endMarker, seed) => {
          const p = { ...lp, dictSize: 4096 };
          const stream = tinyCompress(data, { ...p, endMarker });
          const r = rng(seed);
          const res = drive(new LzmaDecoder(p), stream, data.length, { piece: () => r() % 200, read: () => r() % 900 });
          expect(firstDiff(res.output, data)).toBe(-1);
          expect(res.inputConsumed).toBe(stream.length);
        },
      ),
      { seed: 4242, numRuns: 150 },
    );
  });
});

describe('firmware images', () => {
  const file = `${CORPUS}/at-v2.2.0.bin`;
  it('decodes a whole ESP8266 AT firmware image (16 KiB dictionary)', async () => {
    const img = new Uint8Array(readFileSync(file));
    const p: EncodeParams = { lc: 3, lp: 0, pb: 2, dictSize: 16384, effort: 'normal' };
    const stream = await lzmaNativeEncode(img, p);
    const r = rng(77);
    const res = drive(new LzmaDecoder(p), stream, img.length, { piece: () => r() % 5000, read: () => r() % 4096 });
    expect(firstDiff(res.output, img)).toBe(-1);
    expect(res.inputConsumed).toBe(stream.length);
  });

  it('decodes 64 KiB slices of every image with several props', async () => {
    const files = ['at-v2.2.1.bin', 'at-v3.0.2.bin', 'at-v3.0.6.bin', 'boot_v1.7.bin'];
    const r = rng(78);
    for (const [i, name] of files.entries()) {
      const img = new Uint8Array(readFileSync(`${CORPUS}/${name}`));
      const off = img.length > 65536 ? (r() % (img.length - 65536)) & ~3 : 0;
      const slice = img.subarray(off, off + 65536);
      const p: EncodeParams = { ...[{ lc: 3, lp: 0, pb: 2 }, { lc: 0, lp: 2, pb: 2 }, { lc: 1, lp: 3, pb: 0 }, { lc: 4, lp: 0, pb: 4 }][i], dictSize: 16384 };
      const stream = await lzmaNativeEncode(slice, p);
      const res = drive(new LzmaDecoder(p), stream, slice.length, { piece: () => r() % 1500, read: () => r() % 3000 });
      expect(firstDiff(res.output, slice)).toBe(-1);
    }
  });
});
