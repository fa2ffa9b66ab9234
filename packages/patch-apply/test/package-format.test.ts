import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { crc32 } from '../src/crc32.js';
import {
  DEFAULT_LIMITS,
  encodeHeader,
  FIXED_HEADER_BYTES,
  headerLengthFor,
  parseHeader,
  type ChunkEntry,
  type HeaderFields,
} from '../src/package-format.js';
import { PackageError } from '../src/package-error.js';
import { codeOf } from './helpers/error-code.js';
import { chunkMaskOf, chunkTransformed, type PackageTransform } from '../src/transform/transform-section.js';

function sampleHeader(newSize = 3 * 4096 + 100, split = 4096): HeaderFields {
  const count = Math.ceil(newSize / split);
  const chunks: ChunkEntry[] = [];
  let off = 0;
  for (let i = 0; i < count; i++) {
    chunks.push({ recordOffset: off, recordLength: 100 + i, rawLength: 10 + (i % 5), crc32: (0xdeadbeef ^ i) >>> 0 });
    off += 100 + i;
  }
  return {
    mode: 'inplace',
    splitSize: split,
    oldSize: 5000,
    newSize,
    oldSha256: new Uint8Array(32).fill(1),
    newSha256: new Uint8Array(32).fill(2),
    lzma: { lc: 3, lp: 0, pb: 2, dictSize: 16384 },
    signatureType: 0,
    signatureLength: 0,
    payloadSha256: new Uint8Array(32).fill(3),
    firmwareVersion: 'v1',
    securityCounter: 7,
    allowDowngrade: false,
    chunks,
  };
}

/** Re-seals a header after a field edit, so the test reaches the field check, not the checksum. */
function reseal(bytes: Uint8Array): Uint8Array {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const end = bytes.length - 4;
  v.setUint32(end, crc32(bytes.subarray(0, end)) >>> 0, true);
  return bytes;
}


describe('package header codec', () => {
  it('round-trips every field', () => {
    fc.assert(
      fc.property(
        fc.record({
          mode: fc.constantFrom('inplace' as const, 'ab' as const),
          splitK: fc.integer({ min: 1, max: 32 }),
          newSize: fc.integer({ min: 0, max: 1 << 20 }),
          oldSize: fc.integer({ min: 0, max: 1 << 20 }),
          lc: fc.integer({ min: 0, max: 4 }),
          pb: fc.integer({ min: 0, max: 4 }),
          dict: fc.integer({ min: 4096, max: 1 << 22 }),
          version: fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 32 }),
          counter: fc.integer({ min: 0, max: 0xffffffff }),
          allowDowngrade: fc.boolean(),
          sig: fc.constantFrom([0, 0], [1, 64], [2, 64], [3, 256]),
        }),
        (r) => {
          const split = r.splitK * 4096;
          const base = sampleHeader(r.newSize, split);
          const h = {
            ...base,
            mode: r.mode,
            oldSize: r.oldSize,
            lzma: { lc: r.lc, lp: 4 - r.lc, pb: r.pb, dictSize: r.dict },
            firmwareVersion: r.version,
            securityCounter: r.counter,
            allowDowngrade: r.allowDowngrade,
            signatureType: r.sig[0],
            signatureLength: r.sig[1],
          };
          const bytes = encodeHeader(h);
          expect(bytes.length).toBe(headerLengthFor(h.chunks.length));
          const back = parseHeader(bytes, { ...DEFAULT_LIMITS, maxDictSize: 1 << 22 });
          expect(back.mode).toBe(h.mode);
          expect(back.splitSize).toBe(split);
          expect(back.oldSize).toBe(h.oldSize);
          expect(back.newSize).toBe(h.newSize);
          expect(back.lzma).toEqual(h.lzma);
          expect(back.chunks).toEqual(h.chunks);
          expect(back.payloadLength).toBe(h.chunks.reduce((s, c) => s + c.recordLength, 0));
          expect(Array.from(back.oldSha256)).toEqual(Array.from(h.oldSha256));
          expect(Array.from(back.payloadSha256)).toEqual(Array.from(h.payloadSha256));
          expect([back.firmwareVersion, back.securityCounter, back.allowDowngrade]).toEqual([r.version, r.counter, r.allowDowngrade]);
          expect([back.signatureType, back.signatureLength]).toEqual(r.sig);
        },
      ),
      { seed: 42, numRuns: 200 },
    );
  });

  it('rejects a flipped bit anywhere in the header', () => {
    const bytes = encodeHeader(sampleHeader());
    for (let i = 0; i < bytes.length; i++) {
      for (const bit of [0, 7]) {
        const copy = bytes.slice();
        copy[i] ^= 1 << bit;
        expect(() => parseHeader(copy)).toThrow(PackageError);
      }
    }
  });

  it('rejects truncated headers', () => {
    const bytes = encodeHeader(sampleHeader());
    for (const n of [0, 1, 4, FIXED_HEADER_BYTES - 1, FIXED_HEADER_BYTES, bytes.length - 1]) {
      expect(codeOf(() => parseHeader(bytes.subarray(0, n)))).toBe('truncated');
    }
  });

  it('names the field that is wrong', () => {
    const cases: [string, (v: DataView) => void, string][] = [
      ['magic', (v) => v.setUint32(0, 0x12345678, true), 'bad-magic'],
      ['version', (v) => v.setUint16(4, 1, true), 'unsupported-version'],
      ['mode', (v) => v.setUint8(6, 3), 'bad-header'],
      ['flags', (v) => v.setUint8(7, 4), 'bad-header'],
      ['raw mode with LZMA compression', (v) => v.setUint8(6, 2), 'bad-header'],
      ['split not a multiple of 4096', (v) => v.setUint32(12, 5000, true), 'bad-header'],
      ['huge new size', (v) => v.setUint32(20, 0xffffffff, true), 'limit-exceeded'],
      ['chunk count', (v) => v.setUint32(24, 99, true), 'bad-header'],
      ['compression', (v) => v.setUint8(28, 7), 'bad-header'],
      ['lc+lp > 4', (v) => v.setUint8(29, 4 * 9 + 3), 'bad-header'],
      ['props > 224', (v) => v.setUint8(29, 225), 'bad-header'],
      ['dictionary over the limit', (v) => v.setUint32(32, 64 << 20, true), 'limit-exceeded'],
      ['tiny dictionary', (v) => v.setUint32(32, 100, true), 'bad-header'],
      ['signature length without type', (v) => v.setUint32(36, 64, true), 'bad-header'],
      ['signature type without length', (v) => v.setUint16(30, 1, true), 'bad-header'],
      ['unknown signature type', (v) => (v.setUint16(30, 9, true), v.setUint32(36, 64, true)), 'bad-header'],
      ['ed25519 signature of the wrong length', (v) => (v.setUint16(30, 1, true), v.setUint32(36, 256, true)), 'bad-header'],
      ['firmware version not printable', (v) => v.setUint8(145, 0x0a), 'bad-header'],
      ['firmware version with bytes after its padding', (v) => v.setUint8(150, 0x41), 'bad-header'],
      ['payload length disagrees with records', (v) => v.setUint32(108, 1, true), 'bad-chunk-table'],
      ['record gap', (v) => v.setUint32(FIXED_HEADER_BYTES + 16, 5, true), 'bad-chunk-table'],
      ['empty record', (v) => v.setUint32(FIXED_HEADER_BYTES + 4, 0, true), 'bad-chunk-table'],
      ['impossible raw length', (v) => v.setUint32(FIXED_HEADER_BYTES + 8, 0x7fffffff, true), 'bad-chunk-table'],
      ['zero raw length', (v) => v.setUint32(FIXED_HEADER_BYTES + 8, 0, true), 'bad-chunk-table'],
    ];
    for (const [name, edit, code] of cases) {
      const bytes = encodeHeader(sampleHeader());
      edit(new DataView(bytes.buffer));
      expect({ name, code: codeOf(() => parseHeader(reseal(bytes))) }).toEqual({ name, code });
    }
  });

  it('refuses a dictionary larger than the caller allows, before allocating', () => {
    const h = sampleHeader();
    const bytes = encodeHeader({ ...h, lzma: { ...h.lzma, dictSize: 1 << 20 } });
    expect(codeOf(() => parseHeader(bytes, { ...DEFAULT_LIMITS, maxDictSize: 16384 }))).toBe('limit-exceeded');
    expect(parseHeader(bytes, { ...DEFAULT_LIMITS, maxDictSize: 1 << 20 }).lzma.dictSize).toBe(1 << 20);
  });

  it('reads a raw (OTA_RAW) header only when it is stored, has no old image and stores exactly NEW', () => {
    const split = 4096;
    const newSize = 2 * split + 10;
    const chunks = [split, split, 10].map((len, i) => ({ recordOffset: i * split, recordLength: len, rawLength: len, crc32: i }));
    const raw = { ...sampleHeader(newSize, split), mode: 'raw' as const, oldSize: 0, oldSha256: new Uint8Array(32), lzma: { lc: 0, lp: 0, pb: 0, dictSize: 0 }, chunks };
    const back = parseHeader(encodeHeader(raw));
    expect([back.mode, back.payloadLength, back.lzma.dictSize]).toEqual(['raw', newSize, 0]);
    const cases: [string, (v: DataView) => void, string][] = [
      ['old size', (v) => v.setUint32(16, 5, true), 'bad-header'],
      ['old hash', (v) => v.setUint8(50, 1), 'bad-header'],
      ['dictionary', (v) => v.setUint32(32, 4096, true), 'bad-header'],
      ['record longer than its chunk', (v) => (v.setUint32(FIXED_HEADER_BYTES + 32 + 4, 11, true), v.setUint32(108, newSize + 1, true)), 'bad-header'],
      ['raw length differs', (v) => v.setUint32(FIXED_HEADER_BYTES + 8, 4095, true), 'bad-chunk-table'],
    ];
    for (const [name, edit, code] of cases) {
      const bytes = encodeHeader(raw);
      edit(new DataView(bytes.buffer));
      expect({ name, code: codeOf(() => parseHeader(reseal(bytes))) }).toEqual({ name, code });
    }
  });

  describe('diff_version 3 (transform section)', () => {
    // sampleHeader: 4 chunks, OLD 5000 bytes, NEW 12388 bytes.
    const transform = (over: Partial<PackageTransform> = {}): PackageTransform => ({
      kind: 'thumb2',
      base: 0x0800_0000,
      span: 12388,
      origin: 0x0800_0000,
      chunkMask: chunkMaskOf(4, (i) => i !== 1),
      map: { starts: Int32Array.of(0, 100, 4000), deltas: Int32Array.of(0, 64, 8000) },
      ...over,
    });
    /** Offset of the section in sampleHeader's encoding. */
    const SECTION = FIXED_HEADER_BYTES + 4 * 16;

    it('round-trips the section, with version 3 and the header length it adds; without one it is version 2', () => {
      const bytes = encodeHeader({ ...sampleHeader(), transform: transform() });
      expect(new DataView(bytes.buffer).getUint16(4, true)).toBe(3);
      const back = parseHeader(bytes);
      expect(back.diffVersion).toBe(3);
      expect(back.headerLength).toBe(bytes.length);
      expect(bytes.length).toBeGreaterThan(headerLengthFor(4) + 20);
      const t = back.transform!;
      expect([t.kind, t.base, t.span, t.origin, Array.from(t.map.starts), Array.from(t.map.deltas)]).toEqual(['thumb2', 0x0800_0000, 12388, 0x0800_0000, [0, 100, 4000], [0, 64, 8000]]);
      expect(parseHeader(encodeHeader({ ...sampleHeader(), transform: transform({ kind: 'xtensa', base: 0x3ffe_8000, span: 0x40_0000, origin: 0x4020_1000 }) })).transform).toMatchObject({ kind: 'xtensa', base: 0x3ffe_8000, span: 0x40_0000, origin: 0x4020_1000 });
      expect([0, 1, 2, 3].map((i) => chunkTransformed(t, i))).toEqual([true, false, true, true]);
      const plain = parseHeader(encodeHeader(sampleHeader()));
      expect([plain.diffVersion, plain.transform]).toEqual([2, null]);
    });

    it('names what is wrong in a section (every case resealed)', () => {
      const cases: [string, (v: DataView, b: Uint8Array) => void, string][] = [
        ['unknown kind', (v) => v.setUint8(SECTION, 9), 'bad-header'],
        ['kind 0', (v) => v.setUint8(SECTION, 0), 'bad-header'],
        ['reserved byte', (v) => v.setUint8(SECTION + 2, 1), 'bad-header'],
        ['no chunk transformed', (v) => v.setUint8(SECTION + 20, 0), 'bad-header'],
        ['a bit past the last chunk', (v) => v.setUint8(SECTION + 20, 0x1d), 'bad-header'],
        ['zero span', (v) => v.setUint32(SECTION + 8, 0, true), 'bad-header'],
        ['addresses past 2^32', (v) => v.setUint32(SECTION + 8, 0xf800_0001, true), 'bad-header'],
        ['a span too short for the map', (v) => v.setUint32(SECTION + 8, 4000, true), 'bad-header'],
        ['more segments than encoded', (v) => v.setUint32(SECTION + 16, 4, true), 'bad-header'],
        ['fewer segments than encoded', (v) => v.setUint32(SECTION + 16, 2, true), 'bad-header'],
        ['segments over the limit', (v) => v.setUint32(SECTION + 16, 100_000, true), 'limit-exceeded'],
        ['a start past the span', (v) => v.setUint8(SECTION + 27, 0x7f), 'bad-header'],
        ['version 2 with a section', (v) => v.setUint16(4, 2, true), 'bad-header'],
        ['raw mode', (v) => v.setUint8(6, 2), 'bad-header'],
        ['header length cuts the section short', (v) => v.setUint32(8, headerLengthFor(4) + 5, true), 'bad-header'],
      ];
      for (const [name, edit, code] of cases) {
        const bytes = encodeHeader({ ...sampleHeader(), transform: transform() });
        edit(new DataView(bytes.buffer), bytes);
        expect({ name, code: codeOf(() => parseHeader(reseal(bytes))) }).toEqual({ name, code });
      }
      // A version-3 header without a section at all: the header length has no room for one.
      const plain = encodeHeader(sampleHeader());
      new DataView(plain.buffer).setUint16(4, 3, true);
      expect(codeOf(() => parseHeader(reseal(plain)))).toBe('bad-header');
    });

    it("refuses a map larger than the caller's segment limit", () => {
      const bytes = encodeHeader({ ...sampleHeader(), transform: transform() });
      expect(codeOf(() => parseHeader(bytes, { ...DEFAULT_LIMITS, maxMapEntries: 2 }))).toBe('limit-exceeded');
      expect(parseHeader(bytes, { ...DEFAULT_LIMITS, maxMapEntries: 3 }).transform!.map.starts.length).toBe(3);
    });

    it('rejects a flipped bit anywhere in a version-3 header', () => {
      const bytes = encodeHeader({ ...sampleHeader(), transform: transform() });
      for (let i = 0; i < bytes.length; i++) {
        const copy = bytes.slice();
        copy[i] ^= 0x10;
        expect(() => parseHeader(copy)).toThrow(PackageError);
      }
    });

    it('refuses to encode a transform for a raw package', () => {
      const h = sampleHeader();
      expect(() => encodeHeader({ ...h, mode: 'raw', transform: transform() })).toThrow(RangeError);
    });
  });
});
