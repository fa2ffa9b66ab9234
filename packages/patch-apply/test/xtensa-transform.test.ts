// The Xtensa transform: CALL0 offsets to targets and back (a bijection on any bytes, block by block),
// address words and CALL0 targets carried through the map on the OLD side.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { forEachXtensaReference, xtensaDecode, xtensaEncode, xtensaPredict } from '../src/transform/xtensa.js';
import { CODECS } from '../src/transform/codecs.js';
import { PredictedSource } from '../src/transform/predicted-source.js';
import { memorySource } from '../src/source-reader.js';
import { TRANSFORM_BLOCK } from '../src/transform/block.js';
import type { LabelMap } from '../src/transform/label-map.js';

const ESP = new URL('../../../corpus/esp8266-at/', import.meta.url);
const esp = (v: string) => new Uint8Array(readFileSync(new URL(`at-v${v}.bin`, ESP)));
const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Buffer.compare(a, b) === 0;
const word = (b: Uint8Array, w: number) => new DataView(b.buffer, b.byteOffset).getUint32(w, true);
const NO_LABELS = { base: 0, span: 0, origin: 0 };

function calls(b: Uint8Array): number[] {
  const out: number[] = [];
  forEachXtensaReference(b, b.length, 0, NO_LABELS, (s) => out.push(s), () => {});
  return out;
}

function roundTrips(bytes: Uint8Array, offset = 0): boolean {
  const b = bytes.slice();
  xtensaEncode(b, b.length, offset);
  xtensaDecode(b, b.length, offset);
  return same(b, bytes);
}

/** CALL0 x (3 bytes: low six bits 000101, offset in bits 6-23) at s. */
function call0(b: Uint8Array, s: number, off: number): void {
  const v = (off & 0x3ffff) << 6 | 0x05;
  b[s] = v & 0xff;
  b[s + 1] = (v >>> 8) & 0xff;
  b[s + 2] = (v >>> 16) & 0xff;
}

// Byte soup with many CALL0s: every third byte forced to a CALL0 opcode.
const callRich = fc.uint8Array({ maxLength: 3 * TRANSFORM_BLOCK }).map((b) => {
  const out = b.slice();
  for (let i = 0; i < out.length; i += 3) if (out[i] % 4 === 0) out[i] = (out[i] & 0xc0) | 0x05;
  return out;
});

describe('Xtensa transform', () => {
  it('decode undoes encode exactly on any bytes, at any block offset, and keeps the CALL0s', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 3 * TRANSFORM_BLOCK }), callRich), fc.nat({ max: 1 << 10 }), (bytes, block) => {
        expect(roundTrips(bytes, block * TRANSFORM_BLOCK)).toBe(true);
        const e = bytes.slice();
        xtensaEncode(e, e.length, 0);
        expect(calls(e)).toEqual(calls(bytes));
      }),
      { seed: 41, numRuns: 300 },
    );
  });

  it('turns a CALL0 into its target word: two calls of one function encode alike', () => {
    const b = new Uint8Array(96).fill(0x0d); // 0x0d: a 2-byte (density) instruction, the sweep steps by 2
    call0(b, 8, (64 - 12) >> 2); // from (8 & ~3) + 4 = 12 to 64
    call0(b, 31, (64 - 32) >> 2); // from (31 & ~3) + 4 = 32 to 64 (the sweep: 8, then 11, 13, … 31)
    expect(calls(b)).toEqual([8, 31]);
    const e = b.slice();
    xtensaEncode(e, e.length, 0);
    expect(Array.from(e.subarray(8, 11))).toEqual(Array.from(e.subarray(31, 34)));
    expect(roundTrips(b)).toBe(true);
  });

  it('round-trips real ESP8266 images, whole and at every block-boundary truncation, and finds thousands of CALL0s', () => {
    const img = esp('3.0.4');
    expect(calls(img).length).toBeGreaterThan(5000);
    expect(roundTrips(img)).toBe(true);
    for (let end = TRANSFORM_BLOCK; end < img.length; end += 7 * TRANSFORM_BLOCK) for (const d of [-3, -2, -1, 0, 1, 2]) expect(roundTrips(img.subarray(0, end + d))).toBe(true);
    // Block-local: the whole image and chunk by chunk are the same.
    const whole = img.slice();
    xtensaEncode(whole, whole.length, 0);
    const pieces = new Uint8Array(img.length);
    for (let at = 0; at < img.length; at += 3 * TRANSFORM_BLOCK) {
      const p = img.slice(at, at + 3 * TRANSFORM_BLOCK);
      xtensaEncode(p, p.length, at);
      pieces.set(p, at);
    }
    expect(same(pieces, whole)).toBe(true);
  });

  it('OLD side: address words and CALL0 targets through the map; a word under a CALL0 is left alone', () => {
    const b = new Uint8Array(32).fill(0x0d);
    const v = new DataView(b.buffer);
    v.setUint32(0, 0x4020_1100, true); // an address word (label 0x100); the sweep: 0, 3, 6, 8
    call0(b, 8, (0x20 << 10) | (0x11 << 2)); // bytes 05 11 20: with 0x40 after it, the word at 8 reads 0x40201105
    b[11] = 0x40; // the sweep: 11, 14
    v.setUint32(16, 0x4020_1100, true); // another address word
    const map: LabelMap = { starts: Int32Array.of(0x80), deltas: Int32Array.of(0x20) };
    const labels = { base: 0x4020_1000, span: 0x2000, origin: 0x4020_1000 };
    const seen: [string, number, number][] = [];
    forEachXtensaReference(b, b.length, 0, labels, (s, x) => seen.push(['call', s, x]), (w, x) => seen.push(['word', w, x]));
    // The CALL0 at 8 counts words from (8 & ~3) + 4 = 12: its target is 12 + 4 * 0x8044.
    expect(seen).toEqual([['call', 8, 12 + 4 * 0x8044], ['word', 0, 0x100], ['word', 16, 0x100]]);
    const p = b.slice();
    xtensaPredict(p, p.length, 0, { ...labels, map });
    expect([word(p, 0), word(p, 16)]).toEqual([0x4020_1120, 0x4020_1120]);
    // The CALL0's target moved by 0x20 too, in the encoded form (target word, modulo 2^18).
    expect((p[8] >>> 6) | (p[9] << 2) | (p[10] << 10)).toBe(((12 + 4 * 0x8044 + 0x20) >>> 2) & 0x3ffff);
    expect(p[11]).toBe(0x40);
  });

  it('any read of the predicted source gives the whole-image prediction (random access)', () => {
    const img = esp('2.2.1');
    const prediction = { map: { starts: Int32Array.of(0x21_0000, 0x22_0000), deltas: Int32Array.of(16, -40) }, base: 0x3ffe_8000, span: 0x28_0000, origin: 0x4020_1000 };
    const whole = img.slice();
    xtensaPredict(whole, whole.length, 0, prediction);
    expect(same(whole, img)).toBe(false);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat({ max: img.length - 1 }), fc.integer({ min: 1, max: 9000 })), { minLength: 1, maxLength: 20 }), (reads) => {
        const src = new PredictedSource(memorySource(img), CODECS.xtensa, prediction, img.length);
        src.reset(0);
        for (const [at, n] of reads) {
          const len = Math.min(n, img.length - at);
          const got = new Uint8Array(len);
          src.read(at, got, 0, len);
          expect(same(got, whole.subarray(at, at + len))).toBe(true);
        }
      }),
      { seed: 42, numRuns: 30 },
    );
  });
});
