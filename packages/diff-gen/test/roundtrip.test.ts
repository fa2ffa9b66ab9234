import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { applyPackage, ChunkDecoder, crc32, FIXED_HEADER_BYTES, JS_ENGINE_BYTES, memorySource, PackageError, parseHeader, recordsOffset, StreamPatcher, type PatchMode } from '@otadiff/patch-apply';
import { generatePackage, GenerateError } from '../src/generate.js';
import { applyEdit, codeLike, editArb } from './edits.js';
import { MICROBIT_VARIANTS, MICROBIT_VERSIONS, microbitImage } from '../../../bench/src/corpus.js';

const CORPUS = new URL('../../../corpus/esp8266-at/', import.meta.url);
const corpus = (v: string) => new Uint8Array(readFileSync(new URL(`at-v${v}.bin`, CORPUS)));

function expectSame(a: Uint8Array, b: Uint8Array) {
  expect(a.length).toBe(b.length);
  expect(Buffer.compare(a, b)).toBe(0);
}

async function roundTrip(old: Uint8Array, neu: Uint8Array, mode: Exclude<PatchMode, 'raw'>, splitSize = 4096, referenceNew = false) {
  const { package: pkg, header } = await generatePackage(old, neu, { mode, splitSize, referenceNew });
  expect(header.mode).toBe(mode);
  expect(header.newSize).toBe(neu.length);
  expect(header.chunks.length).toBe(Math.ceil(neu.length / splitSize));
  expectSame(applyPackage(old, pkg).image, neu);
  return pkg;
}

describe('generate + apply round trips', () => {
  for (const mode of ['inplace', 'ab'] as const) {
    it(`${mode}: random structured edits of code-like images`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 0, max: 60000 }), fc.nat(), fc.array(editArb, { minLength: 1, maxLength: 4 }), async (len, seed, edits) => {
          const old = codeLike(len, seed);
          const neu = edits.reduce(applyEdit, old);
          await roundTrip(old, neu, mode);
        }),
        { seed: mode === 'ab' ? 7 : 8, numRuns: 25 },
      );
    });

    if (mode === 'inplace')
      it('inplace with references to restored NEW bytes (referenceNew): random structured edits', async () => {
        await fc.assert(
          fc.asyncProperty(fc.integer({ min: 0, max: 60000 }), fc.nat(), fc.array(editArb, { minLength: 1, maxLength: 4 }), async (len, seed, edits) => {
            const old = codeLike(len, seed);
            await roundTrip(old, edits.reduce(applyEdit, old), 'inplace', 4096, true);
          }),
          { seed: 9, numRuns: 20 },
        );
      });

    it(`${mode}: unrelated random images, growth and shrinkage`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.uint8Array({ maxLength: 20000 }), fc.uint8Array({ maxLength: 20000 }), async (old, neu) => {
          await roundTrip(old, neu, mode);
        }),
        { seed: 11, numRuns: 10 },
      );
    });

    it(`${mode}: empty, tiny and unaligned images`, async () => {
      const a = codeLike(10000, 3);
      const cases: [Uint8Array, Uint8Array][] = [
        [new Uint8Array(0), new Uint8Array(0)],
        [new Uint8Array(0), a],
        [a, new Uint8Array(0)],
        [new Uint8Array([1]), new Uint8Array([2])],
        [a, a],
        [a.subarray(0, 4096), a.subarray(0, 4097)],
        [a.subarray(0, 8192), a.subarray(0, 4095)],
        [a, a.subarray(100)],
      ];
      for (const [old, neu] of cases) await roundTrip(old, neu, mode);
    });
  }

  it('grows an image past the old partition end in place (the window covers restored bytes past old_size)', async () => {
    const old = codeLike(9000, 5);
    const neu = new Uint8Array(40000);
    for (let i = 0; i < neu.length; i++) neu[i] = old[i % old.length] ^ (i >> 12);
    await roundTrip(old, neu, 'inplace');
    await roundTrip(old, neu, 'inplace', 4096, true);
  });

  it('restores the ESP8266 corpus pairs in both modes at 64 KiB and 16 KiB splits', async () => {
    const versions = ['2.2.0', '2.2.1', '3.0.2', '3.0.3'];
    for (let i = 0; i + 1 < versions.length; i++) {
      const old = corpus(versions[i]);
      const neu = corpus(versions[i + 1]);
      await roundTrip(old, neu, 'inplace', 65536);
      await roundTrip(old, neu, 'ab', 16384);
    }
  });

  it('restores the micro:bit CODAL pairs (Cortex-M0 and M4) in both modes', async () => {
    const image = (variant: string, version: string) => new Uint8Array(readFileSync(microbitImage(variant, version)));
    for (const variant of MICROBIT_VARIANTS)
      for (let i = 0; i + 1 < MICROBIT_VERSIONS.length; i++) {
        const old = image(variant, MICROBIT_VERSIONS[i]);
        const neu = image(variant, MICROBIT_VERSIONS[i + 1]);
        await roundTrip(old, neu, i % 2 === 0 ? 'inplace' : 'ab', 65536);
        await roundTrip(old, neu, i % 2 === 0 ? 'ab' : 'inplace', 16384);
      }
  });

  it('streams: the package fed one byte at a time gives the same image', async () => {
    const old = codeLike(20000, 9);
    const neu = applyEdit(applyEdit(old, { kind: 'insert', at: 5000, bytes: codeLike(700, 1) }), { kind: 'delete', at: 15000, len: 300 });
    const { package: pkg } = await generatePackage(old, neu, { splitSize: 4096 });
    for (const pieceSize of [1, 3, 17, 4096]) expectSame(applyPackage(old, pkg, { pieceSize }).image, neu);
  });

  it('random access: any chunk of an ab package restores from OLD and its record alone', async () => {
    const old = codeLike(30000, 4);
    const neu = applyEdit(old, { kind: 'move', from: 2000, len: 5000, to: 20000 });
    const { package: pkg } = await generatePackage(old, neu, { mode: 'ab', splitSize: 4096 });
    const h = parseHeader(pkg);
    const dec = new ChunkDecoder(h, memorySource(old));
    for (const i of [5, 0, 3, h.chunks.length - 1]) {
      const e = h.chunks[i];
      const start = h.headerLength + e.recordOffset;
      const out = dec.decodeChunk(i, e, (off, dst, dstOff, len) => dst.set(pkg.subarray(start + off, start + off + len), dstOff));
      expectSame(out, neu.subarray(i * 4096, Math.min(neu.length, (i + 1) * 4096)));
    }
  });

  it('random access in place: chunk i restores from the partition as it stands when it is decoded (chunks 0..i-2 written, region i-1 still old)', async () => {
    const old = codeLike(30000, 6);
    const neu = applyEdit(old, { kind: 'insert', at: 3000, bytes: codeLike(2500, 2) });
    const { package: pkg } = await generatePackage(old, neu, { mode: 'inplace', splitSize: 4096 });
    const h = parseHeader(pkg);
    const i = 4;
    const partitionWith = (written: number) => {
      const partition = new Uint8Array(Math.max(old.length, neu.length)).fill(0xff);
      partition.set(old);
      partition.set(neu.subarray(0, written * 4096));
      return partition;
    };
    const e = h.chunks[i];
    const start = recordsOffset(h) + e.recordOffset;
    const record = (off: number, dst: Uint8Array, dstOff: number, len: number) => dst.set(pkg.subarray(start + off, start + off + len), dstOff);
    expectSame(new ChunkDecoder(h, memorySource(partitionWith(i - 1))).decodeChunk(i, e, record), neu.subarray(i * 4096, (i + 1) * 4096));
    // The insertion pushed old code 2500 bytes forward: chunk 4 reads old bytes of region 3, which a
    // restore that had already written chunk 3 would have lost. The lookback is what makes them reachable.
    expect(() => new ChunkDecoder(h, memorySource(partitionWith(i))).decodeChunk(i, e, record)).toThrow(PackageError);
  });

  it('the dictionary the header declares is the one the records need', async () => {
    // Repeats 12 KiB apart fit a 16 KiB dictionary; the patcher allocates exactly the declared size.
    const unit = codeLike(12 * 1024, 12);
    const neu = new Uint8Array(64 * 1024);
    for (let i = 0; i < neu.length; i += unit.length) neu.set(unit.subarray(0, Math.min(unit.length, neu.length - i)), i);
    const { package: pkg, header } = await generatePackage(new Uint8Array(0), neu, { dictSize: 16384, splitSize: 65536 });
    expect(header.lzma.dictSize).toBe(16384);
    expectSame(applyPackage(new Uint8Array(0), pkg, { limits: { maxDictSize: 16384, maxSplitSize: 65536, maxImageSize: 1 << 20 } }).image, neu);
    // And a device with less than the declared dictionary refuses the package before allocating.
    expect(() => applyPackage(new Uint8Array(0), pkg, { limits: { maxDictSize: 8192, maxSplitSize: 65536, maxImageSize: 1 << 20 } })).toThrow(/dictionary/);
  });

  it('reports ramBytes bounded by split + dictionary + a small constant (JS_ENGINE_BYTES of it for the engine)', async () => {
    const old = codeLike(50000, 1);
    const { package: pkg } = await generatePackage(old, applyEdit(old, { kind: 'bump', at: 0, len: 50000, delta: 3 }), { mode: 'ab', splitSize: 8192, dictSize: 16384 });
    const p = new StreamPatcher({ source: memorySource(old), sink: () => {} });
    p.push(pkg);
    const ram = p.ramBytes!;
    expect(ram).toBeGreaterThan(8192 + 16384 + JS_ENGINE_BYTES);
    expect(ram).toBeLessThan(8192 + 16384 + JS_ENGINE_BYTES + 32 * 1024);
  });

  it('a chunk whose bytes do not match its CRC-32 is refused (chunk-crc), even with a resealed header', async () => {
    const old = codeLike(20000, 2);
    const { package: pkg } = await generatePackage(old, applyEdit(old, { kind: 'bump', at: 100, len: 9000, delta: 1 }), { splitSize: 4096 });
    const bad = pkg.slice();
    const v = new DataView(bad.buffer);
    const h = parseHeader(pkg);
    v.setUint32(FIXED_HEADER_BYTES + 2 * 16 + 12, (h.chunks[2].crc32 ^ 0x10) >>> 0, true);
    v.setUint32(h.headerLength - 4, crc32(bad.subarray(0, h.headerLength - 4)), true);
    expect(() => applyPackage(old, bad)).toThrow(expect.objectContaining({ code: 'chunk-crc', message: expect.stringMatching(/^chunk 2: CRC-32 mismatch/) }));
  });

  it('refuses bad options with a GenerateError', async () => {
    const a = new Uint8Array(10);
    await expect(generatePackage(a, a, { splitSize: 5000 })).rejects.toBeInstanceOf(GenerateError);
    await expect(generatePackage(a, a, { dictSize: 100 })).rejects.toBeInstanceOf(GenerateError);
    await expect(generatePackage(a, a, { mode: 'sideways' as never })).rejects.toBeInstanceOf(GenerateError);
    await expect(generatePackage(a, a, { lc: 4, lp: 1 })).rejects.toBeInstanceOf(GenerateError);
  });
});
