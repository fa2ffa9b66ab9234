// Drives an LzmaDecoder the way a device would: pieces of input of caller-chosen sizes, output read
// in caller-chosen sizes, with guard bytes around the output to catch writes outside [pos, pos+len).
import { LzmaDecoder, type LzmaProps } from '../../src/lzma-decoder.js';

export const GUARD = 16;
const GUARD_BYTE = 0xa5;

export interface DriveOptions {
  /** Size of the next input piece (0 allowed). Default: the whole stream at once. */
  piece?: () => number;
  /** Size of the next read request (0 allowed). Default: everything still expected. */
  read?: () => number;
  /** Feed the last piece as non-final and then an empty final piece. */
  separateFinal?: boolean;
  /** Bound on feed+read calls (hostile input must never hang). */
  maxCalls?: number;
}

export interface DriveResult {
  output: Uint8Array;
  produced: number;
  inputConsumed: number;
}

/**
 * Decodes `stream` (which must produce `expectedSize` bytes). Every piece is a fresh copy that is
 * scribbled over as soon as the decoder asks for more input, so a decoder that kept a reference to an
 * old piece would produce wrong output. Throws whatever the decoder throws.
 */
export function drive(
  dec: LzmaDecoder,
  stream: Uint8Array,
  expectedSize: number,
  o: DriveOptions = {},
): DriveResult {
  dec.reset(expectedSize);
  const buf = new Uint8Array(expectedSize + 2 * GUARD).fill(GUARD_BYTE);
  const pieceLen = o.piece ?? (() => stream.length);
  const readLen = o.read ?? (() => expectedSize);
  const maxCalls = o.maxCalls ?? 4 * (stream.length + expectedSize) + 1000;
  let inPos = 0;
  let outPos = 0;
  let finalGiven = false;
  let lastPiece: Uint8Array | null = null;
  let calls = 0;
  try {
    loop();
  } finally {
    // Checked on errors too: a failing decoder must not have written outside the range either.
    checkGuards(buf, expectedSize);
  }
  return { output: buf.slice(GUARD, GUARD + expectedSize), produced: outPos, inputConsumed: dec.inputConsumed };

  function loop(): void {
    while (!dec.done) {
      if (++calls > maxCalls) throw new Error(`no progress after ${maxCalls} calls`);
      if (dec.needsInput) {
        if (finalGiven) throw new Error('decoder asks for input after the final piece');
        lastPiece?.fill(0xee);
        const n = Math.min(Math.max(0, pieceLen()), stream.length - inPos);
        const last = inPos + n === stream.length;
        const piece = stream.slice(inPos, inPos + n);
        // Offer the piece inside a larger buffer to check start/end are honoured.
        const host = new Uint8Array(n + 6).fill(0x77);
        host.set(piece, 3);
        lastPiece = host;
        if (last && o.separateFinal) {
          dec.feed(host, 3, 3 + n, false);
          inPos += n;
          const got = dec.read(buf, GUARD + outPos, Math.min(readLen(), expectedSize - outPos));
          outPos += got;
          if (!dec.needsInput) continue;
          dec.feed(new Uint8Array(0), 0, 0, true);
          finalGiven = true;
          continue;
        }
        dec.feed(host, 3, 3 + n, last);
        inPos += n;
        finalGiven = last;
      }
      const want = Math.min(Math.max(0, readLen()), expectedSize - outPos);
      const got = dec.read(buf, GUARD + outPos, want);
      if (got > want) throw new Error(`read returned ${got} > ${want}`);
      outPos += got;
    }
  }
}

export function checkGuards(buf: Uint8Array, expectedSize: number): void {
  for (let i = 0; i < GUARD; i++) {
    if (buf[i] !== GUARD_BYTE || buf[GUARD + expectedSize + i] !== GUARD_BYTE) {
      throw new Error('decoder wrote outside the requested output range');
    }
  }
}

export function decodeWhole(stream: Uint8Array, props: LzmaProps, expectedSize: number, o: DriveOptions = {}): Uint8Array {
  return drive(new LzmaDecoder(props), stream, expectedSize, o).output;
}

/** Deterministic xorshift32 generator for test data. */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

export function randomBytes(n: number, seed: number): Uint8Array {
  const r = rng(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = r() & 0xff;
  return out;
}

/** Firmware-like mix: code-ish random words, zero/0xff padding runs, repeated blocks, strings. */
export function mixedData(n: number, seed: number): Uint8Array {
  const r = rng(seed);
  const out = new Uint8Array(n);
  const words = ['AT+CWJAP', 'ERROR', 'OK\r\n', 'wifi', 'station', 'connect', 'esp8266', ' ', '\0'];
  let i = 0;
  while (i < n) {
    const kind = r() % 5;
    const len = Math.min(n - i, 1 + (r() % 600));
    if (kind === 0) {
      for (let k = 0; k < len; k++) out[i + k] = r() & 0xff;
    } else if (kind === 1) {
      out.fill(r() & 1 ? 0xff : 0, i, i + len);
    } else if (kind === 2 && i > 0) {
      const dist = 1 + (r() % i);
      for (let k = 0; k < len; k++) out[i + k] = out[i + k - dist] ^ (r() % 50 === 0 ? 1 : 0);
    } else {
      let k = 0;
      while (k < len) {
        const w = words[r() % words.length];
        for (let c = 0; c < w.length && k < len; c++, k++) out[i + k] = w.charCodeAt(c);
      }
    }
    i += len;
  }
  return out;
}

/**
 * Index of the first difference between two byte arrays (the shorter length if one is a prefix of
 * the other), or -1 if they are equal. Much faster than a deep toEqual on large arrays.
 */
export function firstDiff(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  if (Buffer.from(a.buffer, a.byteOffset, n).equals(Buffer.from(b.buffer, b.byteOffset, n))) {
    return a.length === b.length ? -1 : n;
  }
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}
