// Fuzz of the restore journal's record decoder and sector scan: journals written by the real encoder
// (Journal.append through MemoryFlash), then corrupted (bit flips, stray bytes, erased or zeroed runs,
// writes cut short, splices, duplicated slots and sectors) or forged (fields rewritten with a resealed
// CRC). Every slot must decode exactly as the documented format says (checked against an independent
// decoder), canonically, and the journal must pick the documented latest record, stay appendable, and
// never throw (an exhausted sequence number, which only forgery reaches, starts the journal over).
// CI runs 1000 cases with a fixed seed; `npm run fuzz` runs many more (OTADIFF_FUZZ_RUNS, OTADIFF_FUZZ_SEED).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { MemoryFlash } from '../src/flash/memory-flash.js';
import { roundUp, type ErasedValue, type OverwriteMode } from '../src/flash/flash.js';
import {
  decodeJournalEntry,
  encodeJournalEntry,
  Journal,
  JOURNAL_RECORD_SIZE,
  type JournalEntry,
  type JournalInput,
  type RestoreStateName,
} from '../src/flash/journal.js';
import { applyMutations, JOURNAL_CODEC, mutationsArb, readLE, type MutationContext } from './helpers/flash-mutations.js';
import { FUZZ_SEED, fuzzRuns, suiteWatchdog } from './fuzz-watchdog.js';

const RUNS = fuzzRuns(1000);
const SEED = FUZZ_SEED;
const HANG_MS = 15_000;
/** A scan of two small sectors takes microseconds. */
const SLOW_MS = 500;

const STATES: readonly RestoreStateName[] = ['idle', 'verified', 'saved', 'chunk-done', 'image-verified', 'boot-switched', 'failed'];
const MAGIC = 0x4a41544f;

/** The record format of journal.ts's header comment, decoded independently of the module. */
function refDecode(b: Uint8Array): JournalEntry | null {
  if (b.length < JOURNAL_RECORD_SIZE) return null;
  if (readLE(b, 0, 4) !== MAGIC) return null;
  if (readLE(b, 24, 4) !== zlibCrc32(b.subarray(0, 24)) >>> 0) return null;
  const code = b[12];
  if (code < 1 || code > STATES.length || b[13] !== 1 || b[14] !== 0 || b[15] !== 0) return null;
  return { seq: readLE(b, 4, 4), updateId: readLE(b, 8, 4), state: STATES[code - 1], chunk: readLE(b, 16, 4), aux: readLE(b, 20, 4) };
}

interface RefScan {
  /** Every valid record in scan order (sector 2 slot 0.., then sector 3). */
  valid: JournalEntry[];
  /** The first valid record with the highest sequence number. */
  best: JournalEntry | null;
}

function refScan(raw: Uint8Array, ss: number, slot: number): RefScan {
  const valid: JournalEntry[] = [];
  let best: JournalEntry | null = null;
  for (const s of [2, 3]) {
    for (let i = 0; (i + 1) * slot <= ss; i++) {
      const e = refDecode(raw.subarray(s * ss + i * slot, s * ss + (i + 1) * slot));
      if (e === null) continue;
      valid.push(e);
      if (best === null || e.seq > best.seq) best = e;
    }
  }
  return { valid, best };
}

/**
 * [sectorSize, programUnit, erased value, overwrite rule]: slots of 28 and 32 bytes, 4 to 16 slots a
 * sector, some with unused tails; 0xFF and 0x00 flash; program-once (ECC) units of 8, 16 and 32 bytes.
 */
const GEOMETRIES: readonly (readonly [number, number, ErasedValue, OverwriteMode])[] = [
  [128, 1, 0xff, 'error'],
  [256, 1, 0x00, 'error'],
  [256, 8, 0xff, 'program-once'],
  [256, 16, 0x00, 'program-once'],
  [512, 32, 0xff, 'program-once'],
];

function context(ss: number, slot: number): MutationContext {
  const sites = [];
  for (const s of [0, 1]) for (let i = 0; (i + 1) * slot <= ss; i++) sites.push({ offset: s * ss + i * slot, span: slot, codec: JOURNAL_CODEC });
  return { sectorSize: ss, sites };
}

const U32 = fc.integer({ min: 0, max: 0xffffffff });
const UPDATE_IDS = [0x1234abcd, 0x0badf00d, 0, 0xffffffff];
const inputArb: fc.Arbitrary<JournalInput> = fc.record({
  state: fc.constantFrom(...STATES),
  chunk: fc.oneof(fc.nat({ max: 16 }), U32),
  aux: U32,
  updateId: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...UPDATE_IDS) }, { weight: 1, arbitrary: U32 }),
});

const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Buffer.compare(a, b) === 0;

describe('journal fuzz', () => {
  const watchdog = suiteWatchdog('fuzz-journal', HANG_MS, () => 2 * 512);
  const seen = new Map<string, number>();
  const count = (k: string) => seen.set(k, (seen.get(k) ?? 0) + 1);

  it('the reference decoder agrees with the encoder on honest records', () => {
    const buf = new Uint8Array(JOURNAL_RECORD_SIZE);
    const e: JournalEntry = { seq: 7, updateId: 0xfeedbeef, state: 'saved', chunk: 3, aux: 0xffffffff };
    encodeJournalEntry(e, buf);
    expect(refDecode(buf)).toEqual(e);
    expect(decodeJournalEntry(buf)).toEqual(e);
    buf[13] = 2;
    expect(refDecode(buf)).toBeNull();
  });

  it(
    `decodeJournalEntry on mutated records and views matches the format, canonically (${RUNS} runs, seed ${SEED})`,
    () => {
      const record = fc.record({ seq: U32, updateId: U32, state: fc.constantFrom(...STATES), chunk: U32, aux: U32 });
      fc.assert(
        fc.property(
          record,
          fc.nat({ max: 40 }),
          fc.array(
            fc.oneof(
              fc.record({ kind: fc.constant('flip' as const), at: fc.nat({ max: 27 }), bit: fc.nat({ max: 7 }) }),
              fc.record({ kind: fc.constant('set' as const), at: fc.nat({ max: 27 }), value: fc.nat({ max: 255 }) }),
              fc.record({ kind: fc.constant('reseal' as const), at: fc.nat({ max: 23 }), value: fc.nat({ max: 255 }) }),
            ),
            { maxLength: 3 },
          ),
          fc.integer({ min: 0, max: 40 }),
          (e, lead, muts, length) => {
            // The record sits `lead` bytes into a larger buffer, as in a sector read; the view may be short.
            const big = new Uint8Array(lead + 40).fill(0xff);
            const rec = big.subarray(lead, lead + JOURNAL_RECORD_SIZE);
            encodeJournalEntry(e, rec);
            for (const m of muts) {
              if (m.kind === 'flip') rec[m.at] ^= 1 << m.bit;
              else rec[m.at] = m.value;
              if (m.kind === 'reseal') new DataView(rec.buffer, rec.byteOffset).setUint32(24, zlibCrc32(rec.subarray(0, 24)) >>> 0, true);
            }
            const view = big.subarray(lead, lead + length);
            const got = decodeJournalEntry(view);
            expect(got).toEqual(refDecode(view));
            if (muts.length === 0 && length >= JOURNAL_RECORD_SIZE) expect(got).toEqual(e);
            if (got !== null) {
              const again = new Uint8Array(JOURNAL_RECORD_SIZE);
              encodeJournalEntry(got, again);
              expect(same(again, view.subarray(0, JOURNAL_RECORD_SIZE))).toBe(true);
            }
            count(got === null ? 'record refused' : 'record accepted');
          },
        ),
        { seed: SEED, numRuns: RUNS },
      );
    },
    Math.max(60_000, RUNS * 20),
  );

  it(
    `a journal written by the real encoder, then corrupted or forged, reads as the format says and stays appendable (${RUNS} runs, seed ${SEED})`,
    () => {
      fc.assert(
        fc.property(
          fc.nat({ max: GEOMETRIES.length - 1 }),
          fc.array(inputArb, { maxLength: 40 }),
          mutationsArb(4),
          inputArb,
          (gi, history, muts, next) => {
            const [ss, pu, erasedValue, onOverwrite] = GEOMETRIES[gi];
            const slot = roundUp(JOURNAL_RECORD_SIZE, pu);
            const flash = new MemoryFlash({ size: 4 * ss, sectorSize: ss, programUnit: pu, erasedValue }, { onOverwrite });
            const writer = new Journal(flash);
            const written = history.map((h) => writer.append(h));
            expect(new Journal(flash).latest()).toEqual(written.at(-1) ?? null);

            const region = flash.raw.subarray(2 * ss, 4 * ss);
            const forged = applyMutations(region, context(ss, slot), muts);
            const input = region.slice();
            watchdog.guard(input, () => {
              const t0 = performance.now();
              const ref = refScan(flash.raw, ss, slot);

              // Every slot decodes as the format says; an accepted slot is the canonical encoding of its value.
              for (let off = 0; off + JOURNAL_RECORD_SIZE <= region.length; off += slot) {
                const bytes = region.subarray(off, off + slot);
                const got = decodeJournalEntry(bytes);
                expect(got).toEqual(refDecode(bytes));
                if (got !== null) {
                  const again = new Uint8Array(JOURNAL_RECORD_SIZE);
                  encodeJournalEntry(got, again);
                  expect(same(again, bytes.subarray(0, JOURNAL_RECORD_SIZE))).toBe(true);
                }
              }
              // Corruption cannot invent records: every valid one is a record that was really written.
              if (!forged) for (const e of ref.valid) expect(e).toEqual(written[e.seq - 1]);

              const journal = new Journal(flash);
              expect(journal.latest()).toEqual(ref.best);
              expect(journal.entries()).toEqual([...ref.valid].sort((a, b) => a.seq - b.seq));
              if (ref.best !== null) expect(journal.latestFor(ref.best.updateId)).toEqual(ref.best);

              const before = flash.snapshot();
              if (ref.best?.seq === 0xffffffff) {
                // Exhausted (only by forgery): the journal starts over with the new record alone.
                const e = journal.append(next);
                expect(e).toEqual({ ...next, seq: 1 });
                expect(new Journal(flash).entries()).toEqual([e]);
                count('sequence exhausted');
                return;
              }
              const e = journal.append(next);
              expect(e).toEqual({ ...next, seq: (ref.best?.seq ?? 0) + 1 });
              expect(journal.erases).toBeLessThanOrEqual(1);
              // Only the journal's own sectors change, and the previous latest record survives the append.
              expect(same(flash.raw.subarray(0, 2 * ss), before.subarray(0, 2 * ss))).toBe(true);
              const after = refScan(flash.raw, ss, slot);
              expect(after.best).toEqual(e);
              if (ref.best !== null) expect(after.valid).toContainEqual(ref.best);
              expect(new Journal(flash).latest()).toEqual(e);
              count(forged ? 'forged' : ref.best === null ? 'emptied' : ref.best.seq === written.length ? 'latest kept' : 'fell back');
              const ms = performance.now() - t0;
              if (ms > SLOW_MS) throw new Error(`journal checks took ${ms.toFixed(0)} ms`);
            });
          },
        ),
        { seed: SEED, numRuns: RUNS },
      );
      // The mutations must reach the interesting cases, not only leave the journal as it was.
      if (RUNS >= 300) for (const k of ['record refused', 'record accepted', 'forged', 'emptied', 'latest kept', 'fell back']) expect(seen.get(k) ?? 0, `${k} in ${JSON.stringify([...seen])}`).toBeGreaterThan(0);
    },
    Math.max(60_000, RUNS * 20),
  );
});
