// Hostile and malformed input: every failure must be an LzmaError, bounded in work, and the decoder
// must never write outside the output range it was given.
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { LzmaDecoder, LzmaError, type LzmaProps } from '../src/lzma-decoder.js';
import { drive, mixedData, rng, type DriveOptions } from './helpers/lzma-drive.js';
import { lzmaNativeEncode } from './helpers/lzma-oracle.js';
import { TinyLzmaEncoder, tinyCompress, type LzmaOp } from './helpers/tiny-lzma-encoder.js';

const P: LzmaProps = { lc: 3, lp: 0, pb: 2, dictSize: 4096 };

/** Runs the decoder; returns 'ok' or the LzmaError message. Any other exception fails the test. */
function outcome(stream: Uint8Array, expectedSize: number, o: DriveOptions = {}, props: LzmaProps = P): string {
  try {
    drive(new LzmaDecoder(props), stream, expectedSize, o);
    return 'ok';
  } catch (e) {
    if (e instanceof LzmaError) return e.message;
    throw e;
  }
}

function crafted(ops: LzmaOp[], endMarker: boolean, props: LzmaProps = P): { stream: Uint8Array; size: number } {
  const enc = new TinyLzmaEncoder(props.lc, props.lp, props.pb);
  for (const op of ops) enc.encode(op);
  const size = enc.data.length;
  return { stream: enc.finish(endMarker), size };
}

const lits = (s: string): LzmaOp[] => [...s].map((c) => ({ kind: 'lit', byte: c.charCodeAt(0) }));

describe('truncated and extended input', () => {
  let withMarker: Uint8Array;
  let noMarker: Uint8Array;
  const data = mixedData(3000, 17);
  beforeAll(async () => {
    withMarker = await lzmaNativeEncode(data, { ...P });
    noMarker = tinyCompress(data, { ...P, endMarker: false });
  });

  it('rejects every truncation of a stream (with and without end marker)', () => {
    for (const stream of [withMarker, noMarker]) {
      for (let len = 0; len < stream.length; len++) {
        const msg = outcome(stream.subarray(0, len), data.length, { piece: () => 97 });
        expect(msg, `truncated to ${len} of ${stream.length}`).toBe('compressed stream is truncated');
      }
      expect(outcome(stream, data.length, { piece: () => 97 })).toBe('ok');
    }
  });

  it('rejects trailing bytes after the stream, at every split of the extended input', () => {
    for (const stream of [withMarker, noMarker]) {
      for (const extra of [[0], [0, 0, 0, 0, 0], [0xff], Array.from({ length: 40 }, (_, i) => i)]) {
        const ext = new Uint8Array([...stream, ...extra]);
        for (let k = Math.max(0, stream.length - 30); k <= ext.length; k++) {
          let call = 0;
          const msg = outcome(ext, data.length, { piece: () => (call++ === 0 ? k : 1e9) });
          expect(msg).toMatch(/trailing bytes/);
        }
      }
    }
  });

  it('rejects input fed after the end of the stream', () => {
    const dec = new LzmaDecoder(P);
    const res = drive(dec, withMarker, data.length, { separateFinal: false });
    expect(res.inputConsumed).toBe(withMarker.length);
    expect(dec.done).toBe(true);
    expect(() => dec.feed(new Uint8Array(3), 0, 3, true)).toThrow(/after the final piece|trailing/);
    // With the stream fed as non-final, a later non-empty piece is trailing garbage.
    const dec2 = new LzmaDecoder(P);
    dec2.reset(data.length);
    dec2.feed(noMarker, 0, noMarker.length, false);
    const out = new Uint8Array(data.length);
    let got = 0;
    while (got < data.length) {
      const n = dec2.read(out, got, data.length - got);
      if (n === 0) break;
      got += n;
    }
    if (!dec2.done) {
      dec2.feed(new Uint8Array(1), 0, 1, true);
      expect(() => dec2.read(out, got, data.length - got)).toThrow(/trailing bytes/);
    } else {
      expect(() => dec2.feed(new Uint8Array(1), 0, 1, true)).toThrow(/trailing bytes/);
    }
  });

  it('rejects a wrong expected size (too small or too large)', () => {
    const n = data.length;
    for (const size of [0, 1, n >> 1, n - 1]) {
      expect(outcome(withMarker, size)).toMatch(/continues past the expected size|crosses the end/);
      expect(outcome(noMarker, size)).toMatch(/continues past the expected size|crosses the end/);
    }
    for (const size of [n + 1, n + 1000, 2 * n]) {
      expect(outcome(withMarker, size)).toMatch(new RegExp(`end marker after ${n} bytes, expected ${size}`));
      expect(outcome(noMarker, size)).toMatch(/truncated/);
    }
  });
});

describe('crafted invalid streams', () => {
  it('rejects a first range-coder byte other than 0 and an impossible start code', () => {
    const { stream, size } = crafted(lits('hello'), true);
    const bad = stream.slice();
    bad[0] = 1;
    expect(outcome(bad, size)).toMatch(/first byte is 0x1, not 0/);
    expect(outcome(new Uint8Array([0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0]), 1)).toMatch(/range coder start/);
  });

  it('rejects a match reaching before the start of the data', () => {
    const { stream, size } = crafted([...lits('ab'), { kind: 'match', dist: 5, len: 3 }], true);
    expect(outcome(stream, size)).toMatch(/distance 5 exceeds the 2 bytes decoded so far/);
    const oneTooFar = crafted([...lits('ab'), { kind: 'match', dist: 3, len: 3 }], true);
    expect(outcome(oneTooFar.stream, oneTooFar.size)).toMatch(/distance 3 exceeds the 2 bytes decoded so far/);
    // Exactly at the start is fine.
    const ok = crafted([...lits('ab'), { kind: 'match', dist: 2, len: 7 }], true);
    expect(outcome(ok.stream, ok.size)).toBe('ok');
  });

  it('rejects distances of 2^31 and more (held as negative int32s) with their real value', () => {
    const ops: LzmaOp[] = [];
    const r = rng(4);
    for (let i = 0; i < 5000; i++) ops.push({ kind: 'lit', byte: r() & 0xff });
    for (const dist of [2 ** 31, 2 ** 31 + 1, 3 * 2 ** 30 + 17, 2 ** 32 - 2]) {
      const bad = crafted([...ops, { kind: 'match', dist, len: 5 }], false);
      expect(outcome(bad.stream, bad.size)).toMatch(new RegExp(`distance ${dist} exceeds the 4096-byte dictionary`));
    }
  });

  it('rejects a match beyond the dictionary once it has wrapped', () => {
    const ops: LzmaOp[] = [];
    const r = rng(3);
    for (let i = 0; i < 5000; i++) ops.push({ kind: 'lit', byte: r() & 0xff });
    const okStream = crafted([...ops, { kind: 'match', dist: 4096, len: 50 }], false);
    expect(outcome(okStream.stream, okStream.size)).toBe('ok');
    const bad = crafted([...ops, { kind: 'match', dist: 4097, len: 50 }], false);
    expect(outcome(bad.stream, bad.size)).toMatch(/distance 4097 exceeds the 4096-byte dictionary/);
    expect(outcome(bad.stream, bad.size, {}, { ...P, dictSize: 8192 })).toBe('ok');
  });

  it('rejects repeated matches before any data', () => {
    for (const op of [{ kind: 'rep', index: 0, len: 4 }, { kind: 'shortrep' }, { kind: 'rep', index: 2, len: 2 }] as LzmaOp[]) {
      const { stream } = crafted([op, ...lits('xyz')], true);
      expect(outcome(stream, 8)).toMatch(/repeated match before any data/);
    }
  });

  it('rejects an end marker before the expected size, and data after it', () => {
    const early = crafted([...lits('abc'), { kind: 'eopm' }, ...lits('def')], false);
    expect(outcome(early.stream, 6)).toMatch(/end marker after 3 bytes, expected 6/);
    const fine = crafted(lits('abc'), true);
    expect(outcome(fine.stream, 3)).toBe('ok');
    expect(outcome(fine.stream, 2)).toMatch(/continues past the expected size 2/);
  });

  it('rejects a match that runs past the expected size', () => {
    const { stream } = crafted([...lits('a'), { kind: 'match', dist: 1, len: 20 }], true);
    expect(outcome(stream, 21)).toBe('ok');
    for (const read of [1, 5, 100]) {
      expect(outcome(stream, 10, { read: () => read })).toMatch(/crosses the end|continues past/);
    }
  });

  it('rejects a marker with an unflushed range coder', () => {
    // The last byte only affects the flushed low bits: the marker still decodes, but code != 0.
    const { stream, size } = crafted(lits('abcdef'), true);
    for (const x of [1, 0x40, 0x80]) {
      const bad = stream.slice();
      bad[bad.length - 1] ^= x;
      expect(outcome(bad, size)).toBe('corrupt LZMA stream: range coder not flushed after the end marker');
    }
  });
});

describe('bit flips and random garbage', () => {
  let streams: { stream: Uint8Array; data: Uint8Array }[] = [];
  beforeAll(async () => {
    const a = mixedData(6000, 23);
    const b = mixedData(2000, 24);
    streams = [
      { stream: await lzmaNativeEncode(a, { ...P }), data: a },
      { stream: await lzmaNativeEncode(b, { ...P, effort: 'normal' }), data: b },
      { stream: tinyCompress(b, { ...P, endMarker: false }), data: b },
    ];
  });

  it('flipped bits give an LzmaError or a bounded decode, never an out-of-range write or a hang', () => {
    fc.assert(
      fc.property(
        fc.nat(2),
        fc.array(fc.tuple(fc.nat(), fc.nat(7)), { minLength: 1, maxLength: 3 }),
        fc.integer({ min: 0, max: 1 << 30 }),
        (which, flips, seed) => {
          const { stream, data } = streams[which];
          const bad = stream.slice();
          for (const [pos, bit] of flips) bad[pos % bad.length] ^= 1 << bit;
          const r = rng(seed);
          const msg = outcome(bad, data.length, { piece: () => r() % 300, read: () => r() % 2000 });
          expect(typeof msg).toBe('string'); // 'ok' (garbage accepted) or an LzmaError message
        },
      ),
      { seed: 777, numRuns: 400 },
    );
  });

  it('random garbage after a valid start is rejected or bounded', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 400 }), fc.nat(5000), fc.nat(100), (junk, size, piece) => {
        const stream = new Uint8Array([0, ...junk]);
        outcome(stream, size, { piece: () => piece + 1, read: () => 1 + (size % 777) });
      }),
      { seed: 778, numRuns: 300 },
    );
  });
});

describe('API misuse', () => {
  it('rejects feeding before the previous piece is consumed, and after the final piece', () => {
    const { stream, size } = crafted(lits('some text some text some text'), true);
    const dec = new LzmaDecoder(P);
    dec.reset(size);
    dec.feed(stream, 0, stream.length, false);
    expect(() => dec.feed(stream, 0, 1, false)).toThrow(/previous input/);
    // Errors are sticky.
    expect(() => dec.read(new Uint8Array(size), 0, size)).toThrow(/previous input/);
    dec.reset(size);
    dec.feed(stream, 0, 3, true);
    expect(() => dec.feed(stream, 3, 4, true)).toThrow(/after the final piece/);
    // An empty non-final piece changes nothing: the decoder still needs input.
    dec.reset(size);
    dec.feed(stream, 0, 0, false);
    expect(dec.needsInput).toBe(true);
    dec.feed(stream, 0, 2, false);
    expect(dec.needsInput).toBe(false);
    expect(() => dec.feed(stream, 2, 4, false)).toThrow(/needsInput is false/);
  });

  it('reports needsInput, done and inputConsumed through a byte-by-byte decode', () => {
    const { stream, size } = crafted([...lits('abcabc'), { kind: 'match', dist: 3, len: 30 }], true);
    const dec = new LzmaDecoder(P);
    dec.reset(size);
    expect(dec.needsInput).toBe(true);
    expect(dec.inputConsumed).toBe(0);
    const out = new Uint8Array(size);
    let got = 0;
    let fed = 0;
    while (!dec.done) {
      if (dec.needsInput) {
        expect(dec.inputConsumed).toBeLessThanOrEqual(fed);
        dec.feed(stream, fed, fed + 1, fed + 1 === stream.length);
        fed++;
        expect(dec.needsInput).toBe(false);
      }
      got += dec.read(out, got, size - got);
    }
    expect(new TextDecoder().decode(out)).toBe('abcabc' + 'abc'.repeat(10));
    expect(dec.inputConsumed).toBe(stream.length);
    expect(dec.needsInput).toBe(false);
    expect(dec.read(out, 0, 5)).toBe(0);
  });
});
