// Fuzz of the package parser and patcher: random mutations of real packages must give a clear
// PackageError or exactly NEW, never another exception, a wrong image or a hang.
// CI runs ~300 cases with a fixed seed; `npm run fuzz` runs many more (OTADIFF_FUZZ_RUNS, OTADIFF_FUZZ_SEED).
import { beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { crc32 } from '../src/crc32.js';
import { generatePackage } from '../../diff-gen/src/generate.js';
import { applyPackage } from '../src/apply-package.js';
import { PackageError, type PackageErrorCode } from '../src/package-error.js';
import { CHUNK_ENTRY_BYTES, FIXED_HEADER_BYTES, parseHeader, type PatchMode } from '../src/package-format.js';
import { trustCheck, type TrustCheck } from '../src/signature.js';
import type { KeyObject } from 'node:crypto';
import { generateKeyPair, loadPrivateKey, trustedKeyOf } from '../../diff-gen/src/sign-package.js';
import { FUZZ_SEED, fuzzRuns, suiteWatchdog, type HangGuard } from './fuzz-watchdog.js';
import { thumbPair } from './helpers/thumb-images.js';

const RUNS = fuzzRuns(300);
const SEED = FUZZ_SEED;
/** One apply of a ~10-30 KB package takes milliseconds; anything near this is a bug. */
const SLOW_MS = 2_000;
/** Past this the watchdog kills the process: a real hang. */
const HANG_MS = 15_000;

const CODES: readonly PackageErrorCode[] = [
  'truncated',
  'bad-magic',
  'unsupported-version',
  'bad-header',
  'header-checksum',
  'limit-exceeded',
  'bad-chunk-table',
  'bad-record',
  'chunk-crc',
  'old-image-mismatch',
  'new-image-mismatch',
  'trailing-data',
  'payload-mismatch',
  'unsigned',
  'bad-signature',
  'security-counter',
];

interface Base {
  name: string;
  old: Uint8Array;
  neu: Uint8Array;
  pkg: Uint8Array;
  headerLength: number;
  chunkCount: number;
  /** The transform section (diff_version 3): [start, end) of the package; empty for version 2. */
  section: [number, number];
  /** Signed bases are applied with a trust policy, so mutations meet the signature check too. */
  trust?: TrustCheck;
}

/** mulberry32: a small deterministic generator for the base images. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Firmware-like bytes: runs of a small random vocabulary of 16-byte words, so diffs and LZMA find structure. */
function codeLike(rand: () => number, length: number): Uint8Array {
  const words = Array.from({ length: 48 }, () => Uint8Array.from({ length: 16 }, () => Math.floor(rand() * 256)));
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i += 16) {
    const w = words[Math.floor(rand() * words.length)];
    out.set(w.subarray(0, Math.min(16, length - i)), i);
    if (rand() < 0.2) out[i + Math.floor(rand() * 16)] = Math.floor(rand() * 256);
  }
  return out;
}

function randomBytes(rand: () => number, n: number): Uint8Array {
  return Uint8Array.from({ length: n }, () => Math.floor(rand() * 256));
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A release-to-release edit: scattered byte changes (shifted addresses), an insertion, a deletion, a new tail. */
function edited(rand: () => number, old: Uint8Array): Uint8Array {
  const cut = Math.floor(old.length * 0.3);
  const drop = Math.floor(old.length * 0.6);
  const out = concat(old.subarray(0, cut), randomBytes(rand, 700), old.subarray(cut, drop), old.subarray(drop + 300), randomBytes(rand, 2500));
  for (let i = 0; i < out.length; i += 200 + Math.floor(rand() * 200)) out[i] = (out[i] + 1) & 0xff;
  return out;
}

async function makeBase(name: string, old: Uint8Array, neu: Uint8Array, mode: Exclude<PatchMode, 'raw'>, signingKey?: KeyObject, referenceNew = false, transform: 'auto' | 'xtensa' = 'auto'): Promise<Base> {
  const { package: pkg, header } = await generatePackage(old, neu, { mode, splitSize: 4096, dictSize: 4096, signingKey, securityCounter: 2, referenceNew, transform, base: thumbBase });
  const trust = signingKey === undefined ? undefined : trustCheck({ keys: [trustedKeyOf(signingKey)], securityCounter: 2 });
  const section: [number, number] = [FIXED_HEADER_BYTES + header.chunks.length * CHUNK_ENTRY_BYTES, header.headerLength - 4];
  return { name, old, neu, pkg, headerLength: header.headerLength, chunkCount: header.chunks.length, section, trust };
}

/** Load address of the Thumb-like pair (given, as a .hex file would). */
const thumbBase = 0x0800_0000;

// ---- mutations ----

type Region = 'any' | 'fixed' | 'table' | 'payload';
interface Pos {
  region: Region;
  r: number;
}
type Value = { abs: number } | { rel: number };
type Mutation =
  | { kind: 'flip'; at: Pos; bit: number }
  | { kind: 'set'; at: Pos; value: number }
  | { kind: 'truncate'; at: Pos }
  | { kind: 'insert'; at: Pos; bytes: Uint8Array }
  | { kind: 'delete'; at: Pos; count: number }
  | { kind: 'field'; field: number; chunk: number; value: Value; reseal: boolean }
  /** A byte of the transform section (version 3 bases), resealed so it meets the section's checks. */
  | { kind: 'section'; r: number; value: number; xor: boolean };

/** [offset, size] of every header field a mutation may target; chunk fields are relative to the entry. */
const FIXED_FIELDS: [number, number][] = [
  [0, 4], [4, 2], [6, 1], [7, 1], [8, 4], [12, 4], [16, 4], [20, 4], [24, 4], [28, 1], [29, 1], [30, 2], [32, 4],
  [36, 4], [40, 4], [44, 1], [76, 1], [108, 4], [112, 1], [144, 1], [160, 1],
];
const CHUNK_FIELDS: [number, number][] = [[0, 4], [4, 4], [8, 4], [12, 4]];

const posArb: fc.Arbitrary<Pos> = fc.record({ region: fc.constantFrom<Region>('any', 'fixed', 'table', 'payload', 'payload'), r: fc.nat() });
const valueArb: fc.Arbitrary<Value> = fc.oneof(
  fc.constantFrom(0, 1, 0xff, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff, 4096, 1 << 24, 1 << 28).map((abs) => ({ abs })),
  fc.integer({ min: 0, max: 0xffffffff }).map((abs) => ({ abs })),
  fc.integer({ min: -16, max: 16 }).map((rel) => ({ rel })),
);
// Weighted so that a good share of cases get past the header checksum (resealed field edits, payload bytes).
const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('flip' as const), at: posArb, bit: fc.integer({ min: 0, max: 7 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('set' as const), at: posArb, value: fc.integer({ min: 0, max: 255 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: posArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('insert' as const), at: posArb, bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), at: posArb, count: fc.integer({ min: 1, max: 64 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('section' as const), r: fc.nat(), value: fc.integer({ min: 0, max: 255 }), xor: fc.boolean() }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('field' as const),
      field: fc.nat({ max: FIXED_FIELDS.length + CHUNK_FIELDS.length - 1 }),
      chunk: fc.nat(),
      value: valueArb,
      reseal: fc.constantFrom(true, true, true, false),
    }),
  },
);

function position(b: Base, len: number, p: Pos): number {
  const [lo, hi] =
    p.region === 'fixed' ? [0, FIXED_HEADER_BYTES] : p.region === 'table' ? [FIXED_HEADER_BYTES, b.headerLength] : p.region === 'payload' ? [b.headerLength, len] : [0, len];
  const top = Math.min(hi, len);
  const bottom = Math.min(lo, top);
  return top === bottom ? bottom : bottom + (p.r % (top - bottom));
}

function readField(bytes: Uint8Array, off: number, size: number): number {
  let v = 0;
  for (let i = size - 1; i >= 0; i--) v = v * 256 + bytes[off + i];
  return v;
}

function writeField(bytes: Uint8Array, off: number, size: number, value: number): void {
  let v = ((value % 2 ** (8 * size)) + 2 ** (8 * size)) % 2 ** (8 * size);
  for (let i = 0; i < size; i++) {
    bytes[off + i] = v & 0xff;
    v = Math.floor(v / 256);
  }
}

/** Rewrites the header CRC-32 so a field edit reaches the checks behind the checksum. */
function reseal(bytes: Uint8Array, headerLength: number): void {
  if (bytes.length < headerLength) return;
  const end = headerLength - 4;
  writeField(bytes, end, 4, crc32(bytes.subarray(0, end)) >>> 0);
}

function mutate(b: Base, muts: Mutation[]): Uint8Array {
  let bytes: Uint8Array = b.pkg.slice();
  for (const m of muts) {
    switch (m.kind) {
      case 'flip':
        if (bytes.length > 0) bytes[position(b, bytes.length, m.at)] ^= 1 << m.bit;
        break;
      case 'set':
        if (bytes.length > 0) bytes[position(b, bytes.length, m.at)] = m.value;
        break;
      case 'truncate':
        bytes = bytes.slice(0, position(b, bytes.length, m.at));
        break;
      case 'insert': {
        const at = position(b, bytes.length + 1, m.at);
        bytes = concat(bytes.subarray(0, at), m.bytes, bytes.subarray(at));
        break;
      }
      case 'delete': {
        const at = position(b, bytes.length, m.at);
        bytes = concat(bytes.subarray(0, at), bytes.subarray(Math.min(bytes.length, at + m.count)));
        break;
      }
      case 'field': {
        const [off, size] =
          m.field < FIXED_FIELDS.length
            ? FIXED_FIELDS[m.field]
            : ((f) => [FIXED_HEADER_BYTES + (m.chunk % b.chunkCount) * CHUNK_ENTRY_BYTES + f[0], f[1]])(CHUNK_FIELDS[m.field - FIXED_FIELDS.length]);
        if (off + size > bytes.length) break;
        const value = 'abs' in m.value ? m.value.abs : readField(bytes, off, size) + m.value.rel;
        writeField(bytes, off, size, value);
        if (m.reseal) reseal(bytes, b.headerLength);
        break;
      }
      case 'section': {
        const [lo, hi] = b.section;
        if (hi <= lo || hi > bytes.length) break;
        const at = lo + (m.r % (hi - lo));
        bytes[at] = m.xor ? bytes[at] ^ (1 << (m.value & 7)) : m.value;
        reseal(bytes, b.headerLength);
        break;
      }
    }
  }
  return bytes;
}

const equal = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && Buffer.compare(a, b) === 0;

type Outcome = { ok: true } | { ok: false; code: PackageErrorCode };

/** Applies a package and classifies the outcome; throws (failing the property) on anything but NEW or a PackageError. */
function check(b: Base, pkg: Uint8Array, pieceSize: number, watchdog: HangGuard): Outcome {
  const t0 = performance.now();
  let outcome: Outcome;
  try {
    const { image } = watchdog.guard(pkg, () => applyPackage(b.old, pkg, { pieceSize, trust: b.trust }));
    if (!equal(image, b.neu)) throw new Error(`${b.name}: apply returned ${image.length} bytes that are not NEW`);
    outcome = { ok: true };
  } catch (e) {
    if (!(e instanceof PackageError)) throw new Error(`${b.name}: ${(e as Error)?.name}: ${(e as Error)?.message} (expected a PackageError)`);
    if (!CODES.includes(e.code)) throw new Error(`${b.name}: unknown PackageError code ${e.code}`);
    if (e.message.length < 10) throw new Error(`${b.name}: PackageError ${e.code} has no useful message`);
    outcome = { ok: false, code: e.code };
  }
  const ms = performance.now() - t0;
  if (ms > SLOW_MS) throw new Error(`${b.name}: apply took ${ms.toFixed(0)} ms`);
  return outcome;
}

describe('package fuzz', () => {
  const bases: Base[] = [];

  beforeAll(async () => {
    const rand = prng(0x5eed);
    const oldA = codeLike(rand, 24 * 1024);
    bases.push(await makeBase('inplace-grow', oldA, edited(rand, oldA), 'inplace'));
    const oldB = codeLike(rand, 16 * 1024);
    // ab, NEW shorter than OLD and built from its blocks out of order.
    const newB = concat(oldB.subarray(9000, 14000), randomBytes(rand, 300), oldB.subarray(0, 6000), oldB.subarray(15000, 15100));
    bases.push(await makeBase('ab-shrink', oldB, newB, 'ab'));
    const oldC = codeLike(rand, 9000);
    // inplace with a short tail chunk and late chunks that copy from restored NEW bytes.
    const headC = edited(rand, oldC);
    bases.push(await makeBase('inplace-tail', oldC, concat(headC, headC.subarray(100, 1400)), 'inplace', undefined, true));
    const key = loadPrivateKey(generateKeyPair('ed25519').privateKey);
    bases.push(await makeBase('inplace-signed', oldC, concat(headC, headC.subarray(100, 1400)), 'inplace', key));
    // Thumb-2 transformed packages (diff_version 3): the section, the prediction and the decode pass.
    const thumb = thumbPair(150, 9, thumbBase);
    bases.push(await makeBase('thumb2-inplace', thumb.old, thumb.neu, 'inplace'));
    bases.push(await makeBase('thumb2-ab', thumb.old, thumb.neu, 'ab'));
    // The Xtensa transform (address words only) on the same pair: its words are addresses too.
    bases.push(await makeBase('xtensa-inplace', thumb.old, thumb.neu, 'inplace', undefined, false, 'xtensa'));
  });
  // Room for the largest base package and what the mutations may add to it.
  const watchdog = suiteWatchdog('fuzz-package', HANG_MS, () => Math.max(...bases.map((b) => b.pkg.length)) + 64 * 64);

  it('the base packages are real multi-chunk packages that restore NEW', () => {
    expect(bases.filter((b) => parseHeader(b.pkg).diffVersion === 3).map((b) => `${b.name} ${parseHeader(b.pkg).transform!.kind}`)).toEqual(['thumb2-inplace thumb2', 'thumb2-ab thumb2', 'xtensa-inplace xtensa']);
    for (const b of bases) {
      expect(parseHeader(b.pkg).chunks.length).toBe(b.chunkCount);
      expect(b.chunkCount).toBeGreaterThan(2);
      expect(check(b, b.pkg, 1 << 16, watchdog)).toEqual({ ok: true });
      expect(check(b, b.pkg, 1, watchdog)).toEqual({ ok: true });
    }
  });

  /** Expects `f` to throw a PackageError with one of `codes`; returns it. */
  function refused(f: () => unknown, codes: readonly PackageErrorCode[]): PackageError {
    let err: unknown = null;
    try {
      f();
    } catch (e) {
      err = e;
    }
    expect(err, 'no error thrown').not.toBeNull();
    expect(`${(err as Error).name}: ${(err as Error).message}`).toMatch(/^PackageError: /);
    expect(codes).toContain((err as PackageError).code);
    return err as PackageError;
  }

  // Regression, found by this fuzz (seed 0x07ad1ff): old_size raised by one (header CRC resealed) made
  // the patcher hash past the end of the OLD it was given, and the source read escaped as a RangeError.
  it('a package declaring a larger OLD than the one given is refused with a PackageError', () => {
    const b = bases[0];
    for (const extra of [1, 4096]) {
      const pkg = b.pkg.slice();
      writeField(pkg, 16, 4, b.old.length + extra);
      reseal(pkg, b.headerLength);
      refused(() => applyPackage(b.old, pkg), ['old-image-mismatch']);
    }
  });

  // Regression, found by this fuzz (seed 11): a record whose LZMA stream is followed by garbage, fed one
  // byte at a time. Once the command stream is complete the chunk decoder stops driving the LZMA decoder,
  // so the next byte fed trips the decoder's "previous input not consumed" check, an LzmaError.
  it('a record with trailing bytes after its LZMA stream is refused with a PackageError at any piece size', () => {
    const b = bases[0];
    const h = parseHeader(b.pkg);
    const first = h.chunks[0];
    for (const extra of [1, 23, 40, 100]) {
      const cut = h.headerLength + first.recordLength;
      const pkg = concat(b.pkg.subarray(0, cut), new Uint8Array(extra).fill(0x5a), b.pkg.subarray(cut));
      writeField(pkg, FIXED_HEADER_BYTES + 4, 4, first.recordLength + extra);
      for (let i = 1; i < h.chunks.length; i++) writeField(pkg, FIXED_HEADER_BYTES + i * CHUNK_ENTRY_BYTES, 4, h.chunks[i].recordOffset + extra);
      writeField(pkg, 108, 4, h.payloadLength + extra);
      reseal(pkg, h.headerLength);
      for (const pieceSize of [1, 2, 7, 64, 1 << 16]) refused(() => applyPackage(b.old, pkg, { pieceSize }), ['bad-record']);
    }
  });

  it(
    `mutated packages give a PackageError or exactly NEW (${RUNS} runs, seed ${SEED})`,
    () => {
      const seen = new Map<string, number>();
      fc.assert(
        fc.property(
          fc.nat({ max: bases.length - 1 }),
          fc.array(mutationArb, { minLength: 1, maxLength: 4 }),
          fc.constantFrom(1, 7, 64, 1000, 4096, 1 << 16),
          (which, muts, pieceSize) => {
            const b = bases[which];
            const out = check(b, mutate(b, muts), pieceSize, watchdog);
            const key = out.ok ? 'NEW' : out.code;
            seen.set(key, (seen.get(key) ?? 0) + 1);
          },
        ),
        { seed: SEED, numRuns: RUNS },
      );
      // The mutations must reach past the header checks into the records, not only bounce off the CRC.
      if (RUNS >= 300) for (const code of ['bad-header', 'header-checksum', 'bad-chunk-table', 'bad-record', 'truncated', 'bad-signature']) expect(seen.get(code) ?? 0, `${code} in ${JSON.stringify([...seen])}`).toBeGreaterThan(0);
    },
    Math.max(60_000, RUNS * 50),
  );
});
