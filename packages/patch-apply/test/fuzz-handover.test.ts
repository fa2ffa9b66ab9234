// Fuzz of the hand-over record decoder and its two-copy store: copies written by the real encoder
// (writeHandover through MemoryFlash), then corrupted (bit flips, stray bytes, erased or zeroed runs,
// writes cut short, splices, a copy duplicated over the other) or forged (fields rewritten with a
// resealed CRC). decodeHandover must return exactly what the documented layout says (checked against an
// independent decoder) and re-encode canonically, or throw HandoverError; the store must pick the
// documented copy and keep the newest one through the next write.
// CI runs a fixed seed; `npm run fuzz` runs many more (OTADIFF_FUZZ_RUNS, OTADIFF_FUZZ_SEED).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { MemoryFlash } from '../src/flash/memory-flash.js';
import type { ErasedValue, OverwriteMode } from '../src/flash/flash.js';
import { defaultLayout } from '../src/flash/partition-layout.js';
import {
  checkHandoverFits,
  decodeHandover,
  encodeHandover,
  HANDOVER_SIZE,
  HandoverError,
  inspectHandover,
  readHandover,
  writeHandover,
  type Handover,
  type HandoverInput,
} from '../src/flash/handover.js';
import { applyMutations, HANDOVER_CODEC, mutationsArb, readLE, type MutationContext } from './helpers/flash-mutations.js';
import { FUZZ_SEED, fuzzRuns, suiteWatchdog } from './fuzz-watchdog.js';

const RUNS = fuzzRuns(1000);
const SEED = FUZZ_SEED;
const HANG_MS = 15_000;
const SLOW_MS = 500;

const MAGIC = 0x4841544f;
const UPDATE_TYPES = ['kernel', 'app', 'all'] as const;
const RESULTS = ['finish', 'breakpoint'] as const;

/** The layout of handover.ts's header comment, decoded independently of the module. */
function refDecode(b: Uint8Array): Handover | null {
  if (b.length !== HANDOVER_SIZE || readLE(b, 0, 4) !== MAGIC) return null;
  if (readLE(b, 76, 4) !== zlibCrc32(b.subarray(0, 76)) >>> 0) return null;
  if (readLE(b, 4, 2) !== 1 || readLE(b, 6, 2) !== HANDOVER_SIZE) return null;
  const [ut, res, fw, rb, ts, as, conf, boots] = b.subarray(12, 20);
  if (ut < 1 || ut > 3 || res < 1 || res > 2 || fw < 1 || fw > 2 || rb > 1 || conf > 1) return null;
  if ((ts !== 0x41 && ts !== 0x42) || (as !== 0x41 && as !== 0x42)) return null;
  const packageOffset = readLE(b, 20, 4);
  const packageLength = readLE(b, 24, 4);
  if (packageOffset + packageLength > 0xffffffff) return null;
  const splitSize = readLE(b, 28, 4);
  const diffVersion = readLE(b, 32, 4);
  const imageSize = readLE(b, 36, 4);
  const base = {
    seq: readLE(b, 8, 4),
    updateType: UPDATE_TYPES[ut - 1],
    result: RESULTS[res - 1],
    rollback: rb === 1,
    targetSlot: ts === 0x41 ? ('A' as const) : ('B' as const),
    activeSlot: as === 0x41 ? ('A' as const) : ('B' as const),
    confirmed: conf === 1,
    bootCount: boots,
    packageOffset,
    packageLength,
    packageSha256: b.slice(40, 72),
    securityCounter: readLE(b, 72, 4),
  };
  if (fw === 1) return splitSize === 0 && diffVersion === 0 && imageSize > 0 ? { ...base, firmwareType: 'raw', imageSize } : null;
  return imageSize === 0 && splitSize > 0 ? { ...base, firmwareType: 'diff', splitSize, diffVersion } : null;
}

/** decodeHandover's outcome, failing the property on anything but a Handover or a HandoverError. */
function decode(bytes: Uint8Array): Handover | HandoverError {
  try {
    return decodeHandover(bytes);
  } catch (e) {
    if (!(e instanceof HandoverError)) throw new Error(`decodeHandover threw ${(e as Error)?.name}: ${(e as Error)?.message}`);
    expect(e.message.length).toBeGreaterThan(8);
    return e;
  }
}

/**
 * [sectorSize, programUnit, erased value, overwrite rule] of the params partition: records padded to 80
 * and 96 bytes, on 0xFF and 0x00 flash, program-once (ECC) or not.
 */
const GEOMETRIES: readonly (readonly [number, number, ErasedValue, OverwriteMode])[] = [
  [128, 1, 0xff, 'error'],
  [256, 32, 0x00, 'program-once'],
  [512, 16, 0xff, 'program-once'],
  [256, 4, 0x00, 'error'],
];

const U32 = fc.integer({ min: 0, max: 0xffffffff });
const inputArb: fc.Arbitrary<HandoverInput> = fc
  .tuple(
    fc.record({
      updateType: fc.constantFrom(...UPDATE_TYPES),
      result: fc.constantFrom(...RESULTS),
      rollback: fc.boolean(),
      packageSha256: fc.uint8Array({ minLength: 32, maxLength: 32 }),
      targetSlot: fc.constantFrom('A' as const, 'B' as const),
      activeSlot: fc.constantFrom('A' as const, 'B' as const),
      bootCount: fc.nat({ max: 255 }),
      confirmed: fc.boolean(),
      securityCounter: fc.oneof(fc.nat({ max: 10 }), U32),
    }),
    fc.nat({ max: 1 << 20 }),
    fc.integer({ min: 1, max: 1 << 20 }),
    fc.oneof(
      fc.record({ firmwareType: fc.constant('raw' as const), imageSize: fc.integer({ min: 1, max: 1 << 20 }) }),
      fc.record({ firmwareType: fc.constant('diff' as const), splitSize: fc.constantFrom(4096, 65536, 1), diffVersion: fc.nat({ max: 3 }) }),
    ),
  )
  .map(([b, packageOffset, packageLength, fw]) => ({ ...b, packageOffset, packageLength, ...fw }));

const sampleInput: HandoverInput = {
  updateType: 'app', result: 'finish', rollback: true, packageOffset: 0, packageLength: 5000, packageSha256: new Uint8Array(32).fill(9),
  targetSlot: 'B', activeSlot: 'A', bootCount: 0, confirmed: false, securityCounter: 0, firmwareType: 'diff', splitSize: 4096, diffVersion: 1,
};

const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Buffer.compare(a, b) === 0;
const LAYOUT = defaultLayout({ appSize: 1 << 16, otaSize: 1 << 17, splitSize: 4096, ab: true });
const LAYOUT_INPLACE = defaultLayout({ appSize: 1 << 16, otaSize: 1 << 17, splitSize: 4096 });

describe('hand-over fuzz', () => {
  const watchdog = suiteWatchdog('fuzz-handover', HANG_MS, () => 2 * 512);
  const seen = new Map<string, number>();
  const count = (k: string) => seen.set(k, (seen.get(k) ?? 0) + 1);

  it('the reference decoder agrees with the encoder on honest records', () => {
    const h: Handover = {
      seq: 9, updateType: 'all', result: 'finish', rollback: true, packageOffset: 4096, packageLength: 1000, packageSha256: new Uint8Array(32).fill(3),
      targetSlot: 'B', activeSlot: 'A', bootCount: 2, confirmed: false, securityCounter: 7, firmwareType: 'diff', splitSize: 4096, diffVersion: 1,
    };
    const bytes = encodeHandover(h);
    expect(refDecode(bytes)).toEqual(h);
    expect(decodeHandover(bytes)).toEqual(h);
  });

  // Regression, found by this fuzz (seed 0x07ad1ff): two valid copies with the same sequence number
  // (copy 1 duplicated over copy 0, one field changed and the CRC resealed). readHandover returns copy 0,
  // and writeHandover overwrote copy 0 too: a cut during that write left only copy 1, a record the
  // device never acted on.
  it('with two valid copies of the same sequence number, a write keeps the one readHandover returns', () => {
    const flash = new MemoryFlash({ size: 4 * 128, sectorSize: 128 });
    const first = writeHandover(flash, { ...sampleInput, confirmed: false });
    const { seq: _seq, ...rest } = first;
    const other = encodeHandover({ ...first, confirmed: true });
    flash.erase(1);
    flash.program(128, other);
    expect(readHandover(flash)).toEqual(first);
    const next = writeHandover(flash, { ...rest, bootCount: 1 });
    expect(next.seq).toBe(first.seq + 1);
    expect(decodeHandover(flash.raw.subarray(0, HANDOVER_SIZE))).toEqual(first);
    expect(readHandover(flash)).toEqual(next);
  });

  it(
    `stored copies written by the real encoder, then corrupted or forged, decode as the format says or throw HandoverError (${RUNS} runs, seed ${SEED})`,
    () => {
      fc.assert(
        fc.property(
          fc.nat({ max: GEOMETRIES.length - 1 }),
          fc.array(inputArb, { maxLength: 4 }),
          mutationsArb(4),
          inputArb,
          (gi, history, muts, next) => {
            const [ss, pu, erasedValue, onOverwrite] = GEOMETRIES[gi];
            const flash = new MemoryFlash({ size: 4 * ss, sectorSize: ss, programUnit: pu, erasedValue }, { onOverwrite });
            const written = history.map((h) => writeHandover(flash, h));
            expect(readHandover(flash)).toEqual(written.at(-1) ?? null);
            const region = flash.raw.subarray(0, 2 * ss);
            const ctx: MutationContext = { sectorSize: ss, sites: [0, ss].map((offset) => ({ offset, span: ss, codec: HANDOVER_CODEC })) };
            const forged = applyMutations(region, ctx, muts);
            watchdog.guard(region.slice(), () => {
              const t0 = performance.now();
              const refs = [0, 1].map((k) => {
                const bytes = region.subarray(k * ss, k * ss + HANDOVER_SIZE);
                const ref = refDecode(bytes);
                const got = decode(bytes);
                if (got instanceof HandoverError) expect(ref, got.message).toBeNull();
                else {
                  expect(got).toEqual(ref);
                  // Canonical: the accepted bytes are exactly the encoding of the value they decode to.
                  expect(same(encodeHandover(got), bytes)).toBe(true);
                  // Whatever it names, checking it against a layout is a HandoverError or nothing.
                  for (const layout of [LAYOUT, LAYOUT_INPLACE]) {
                    try {
                      checkHandoverFits(got, layout);
                    } catch (e) {
                      expect(e).toBeInstanceOf(HandoverError);
                    }
                  }
                }
                // A view one byte short or long of a record is refused whatever it holds.
                expect(decode(region.subarray(k * ss, k * ss + HANDOVER_SIZE - 1))).toBeInstanceOf(HandoverError);
                if (k * ss + HANDOVER_SIZE < region.length) expect(decode(region.subarray(k * ss, k * ss + HANDOVER_SIZE + 1))).toBeInstanceOf(HandoverError);
                // Corruption cannot invent records: a valid copy is one that was really written.
                if (!forged && ref !== null) expect(ref).toEqual(written[ref.seq - 1]);
                count(ref === null ? 'copy refused' : 'copy accepted');
                return { ref, erased: bytes.every((x) => x === erasedValue) };
              });

              const copies = inspectHandover(flash);
              copies.forEach((c, k) => {
                const { ref, erased } = refs[k];
                if (erased) expect(c).toEqual({ status: 'erased' });
                else if (ref !== null) expect(c).toEqual({ status: 'valid', record: ref });
                else expect(c.status === 'invalid' && c.error.length > 8).toBe(true);
              });
              const [a, b] = refs.map((r) => r.ref);
              const newest = a === null ? b : b === null ? a : b.seq > a.seq ? b : a;
              expect(readHandover(flash)).toEqual(newest);

              // The next write keeps the newest copy intact (a cut during it can only cost the other one).
              const before = flash.snapshot();
              if (newest?.seq === 0xffffffff) {
                expect(() => writeHandover(flash, next)).toThrow(HandoverError);
                expect(same(flash.raw, before)).toBe(true);
                count('sequence exhausted');
                return;
              }
              const rec = writeHandover(flash, next);
              expect(rec).toEqual({ ...next, seq: (newest?.seq ?? 0) + 1 });
              expect(readHandover(flash)).toEqual(rec);
              const changed = [0, 1].filter((k) => !same(flash.raw.subarray(k * ss, (k + 1) * ss), before.subarray(k * ss, (k + 1) * ss)));
              expect(changed.length).toBe(1);
              expect(same(flash.raw.subarray(2 * ss), before.subarray(2 * ss))).toBe(true);
              if (newest !== null) {
                const kept = 1 - changed[0];
                expect(decode(flash.raw.subarray(kept * ss, kept * ss + HANDOVER_SIZE)), 'the newest copy before the write').toEqual(newest);
              }
              count(forged ? 'forged' : newest === null ? 'none left' : newest.seq === written.length ? 'newest kept' : 'fell back');
              const ms = performance.now() - t0;
              if (ms > SLOW_MS) throw new Error(`hand-over checks took ${ms.toFixed(0)} ms`);
            });
          },
        ),
        { seed: SEED, numRuns: RUNS },
      );
      if (RUNS >= 300) for (const k of ['copy refused', 'copy accepted', 'forged', 'none left', 'newest kept', 'fell back']) expect(seen.get(k) ?? 0, `${k} in ${JSON.stringify([...seen])}`).toBeGreaterThan(0);
    },
    Math.max(60_000, RUNS * 20),
  );
});
