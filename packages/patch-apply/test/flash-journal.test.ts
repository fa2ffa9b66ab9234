import { describe, expect, it } from 'vitest';
import { FlashError, PowerCutError } from '../src/flash/flash.js';
import { MemoryFlash } from '../src/flash/memory-flash.js';
import { FaultyFlash, type TearMode } from '../src/flash/faulty-flash.js';
import { defaultLayout, PartitionView, PARAMS_JOURNAL_SECTOR } from '../src/flash/partition-layout.js';
import {
  decodeJournalEntry,
  deriveUpdateId,
  encodeJournalEntry,
  Journal,
  JournalError,
  JOURNAL_RECORD_SIZE,
  type JournalEntry,
  type JournalInput,
  type RestoreStateName,
} from '../src/flash/journal.js';
import { Prng } from '../src/flash/prng.js';

const STATES: RestoreStateName[] = ['idle', 'verified', 'saved', 'chunk-done', 'image-verified', 'boot-switched', 'failed'];

function input(i: number, updateId = 0xabcd1234): JournalInput {
  return { state: STATES[i % STATES.length], chunk: i, aux: Math.imul(i + 1, 0x9e3779b1) >>> 0, updateId };
}

function expected(i: number, updateId?: number): JournalEntry {
  return { seq: i + 1, ...input(i, updateId) };
}

/** Params partition (4 sectors of `sectorSize`) on its own flash. */
function params(sectorSize: number, programUnit: number): MemoryFlash {
  return new MemoryFlash({ size: 4 * sectorSize, sectorSize, programUnit });
}

describe('journal record codec', () => {
  it('round-trips and rejects every single-bit flip of the record', () => {
    const buf = new Uint8Array(JOURNAL_RECORD_SIZE);
    const e = expected(5);
    encodeJournalEntry(e, buf);
    expect(decodeJournalEntry(buf)).toEqual(e);
    for (let bit = 0; bit < JOURNAL_RECORD_SIZE * 8; bit++) {
      const c = buf.slice();
      c[bit >> 3] ^= 1 << (bit & 7);
      expect(decodeJournalEntry(c)).toBeNull();
    }
    expect(decodeJournalEntry(new Uint8Array(JOURNAL_RECORD_SIZE).fill(0xff))).toBeNull();
    expect(decodeJournalEntry(buf.subarray(0, 27))).toBeNull();
  });

  it('rejects bad inputs', () => {
    const buf = new Uint8Array(JOURNAL_RECORD_SIZE);
    expect(() => encodeJournalEntry({ ...expected(1), chunk: -1 }, buf)).toThrow(JournalError);
    expect(() => encodeJournalEntry({ ...expected(1), aux: 2 ** 32 }, buf)).toThrow(JournalError);
    expect(() => encodeJournalEntry({ ...expected(1), state: 'bogus' as RestoreStateName }, buf)).toThrow(JournalError);
    const j = new Journal(params(256, 8));
    expect(() => j.append({ ...input(0), updateId: 1.5 })).toThrow(JournalError);
    expect(j.latest()).toBeNull();
  });

  it('deriveUpdateId depends on the package hash and the hand-over seq', () => {
    const sha = new Uint8Array(32).fill(7);
    const other = sha.slice();
    other[31] = 8;
    expect(deriveUpdateId(sha, 1)).toBe(deriveUpdateId(sha, 1));
    expect(deriveUpdateId(sha, 1)).not.toBe(deriveUpdateId(sha, 2));
    expect(deriveUpdateId(sha, 1)).not.toBe(deriveUpdateId(other, 1));
    expect(() => deriveUpdateId(new Uint8Array(31), 1)).toThrow(JournalError);
  });
});

describe('Journal', () => {
  it('appends across sector wraps, persists, and costs one erase per sector of records', () => {
    const f = params(256, 8); // 32-byte slots, 8 per sector
    const j = new Journal(f);
    expect(j.slotsPerSector).toBe(8);
    expect(j.latest()).toBeNull();
    for (let i = 0; i < 100; i++) {
      expect(j.append(input(i))).toEqual(expected(i));
      expect(j.latest()).toEqual(expected(i));
      expect(new Journal(f).latest()).toEqual(expected(i));
    }
    expect(j.erases).toBe(Math.floor(99 / 8));
    expect(j.appends).toBe(100);
    // The two sectors hold the newest 9..16 records, contiguous.
    const all = j.entries().map((e) => e.seq);
    expect(all[all.length - 1]).toBe(100);
    expect(all.length).toBeGreaterThanOrEqual(9);
    expect(all).toEqual(Array.from({ length: all.length }, (_, i) => 100 - all.length + 1 + i));
    // Sectors 0 and 1 of the params partition (hand-over) were never touched.
    expect(f.raw.subarray(0, 512).every((b) => b === 0xff)).toBe(true);
  });

  it('reports the erase cost per N records for common geometries', () => {
    const rows: string[] = [];
    for (const [ss, pu] of [
      [4096, 1],
      [4096, 4],
      [4096, 8],
      [4096, 16],
      [2048, 32],
    ]) {
      const j = new Journal(params(ss, pu));
      const n = 1000;
      for (let i = 0; i < n; i++) j.append(input(i));
      expect(j.erases).toBe(Math.floor((n - 1) / j.slotsPerSector));
      rows.push(`sector ${ss} unit ${pu}: slot ${j.slotSize} B, ${j.slotsPerSector}/sector, ${j.erases} erases per ${n} records`);
    }
    console.log(`journal wear:\n  ${rows.join('\n  ')}`);
  });

  it('skips a corrupted record and never writes over it', () => {
    const f = params(256, 8);
    const j = new Journal(f);
    for (let i = 0; i < 5; i++) j.append(input(i));
    const base = PARAMS_JOURNAL_SECTOR * 256;
    for (let bit = 0; bit < JOURNAL_RECORD_SIZE * 8; bit++) {
      const at = base + 4 * 32 + (bit >> 3);
      f.raw[at] ^= 1 << (bit & 7);
      expect(new Journal(f).latest()).toEqual(expected(3));
      f.raw[at] ^= 1 << (bit & 7);
    }
    f.raw[base + 4 * 32 + 9] ^= 0x10;
    const j2 = new Journal(f);
    expect(j2.latest()).toEqual(expected(3));
    const next = j2.append(input(4));
    expect(next).toEqual(expected(4)); // seq 5 again: the corrupt one never counted
    expect(new Journal(f).latest()).toEqual(expected(4));
    expect(f.raw[base + 4 * 32 + 9]).not.toBe(0xff); // corrupt slot left alone; new record went to slot 5
    expect(decodeJournalEntry(f.raw.subarray(base + 5 * 32, base + 6 * 32))).toEqual(expected(4));
  });

  it('reset() starts a new update without erasing; latestFor() ignores stale records', () => {
    const j = new Journal(params(256, 4));
    j.append(input(0, 5));
    j.append(input(1, 5));
    expect(j.latestFor(5)).toEqual(expected(1, 5));
    expect(j.latestFor(7)).toBeNull();
    const r = j.reset(7);
    expect(r).toEqual({ seq: 3, state: 'idle', chunk: 0, aux: 0, updateId: 7 });
    expect(j.latestFor(5)).toBeNull();
    expect(j.latestFor(7)).toEqual(r);
    expect(j.erases).toBe(0);
    j.format();
    expect(j.erases).toBe(2);
    expect(j.latest()).toBeNull();
  });

  it('copes with garbage in both sectors (never formatted)', () => {
    const r = new Prng(9);
    const contents = new Uint8Array(4 * 256);
    for (let i = 0; i < contents.length; i++) contents[i] = r.nextU32() & 0xff;
    const f = new MemoryFlash({ size: 1024, sectorSize: 256, programUnit: 8 }, { contents });
    const j = new Journal(f);
    expect(j.latest()).toBeNull();
    for (let i = 0; i < 20; i++) j.append(input(i));
    expect(new Journal(f).latest()).toEqual(expected(19));
  });

  it('checks its geometry', () => {
    expect(() => new Journal(params(256, 8), 3)).toThrow(FlashError);
    expect(() => new Journal(params(256, 8), -1)).toThrow(FlashError);
    expect(() => new Journal(new MemoryFlash({ size: 4 * 32, sectorSize: 32, programUnit: 32 }))).toThrow(/fewer than 2/);
  });
});

describe('Journal under power cuts', () => {
  const N = 100;
  const cases: Array<{ tear: TearMode; pu: number; countReads: boolean }> = [];
  for (const tear of ['none', 'prefix', 'random', 'bits'] as const) {
    for (const pu of [1, 8]) cases.push({ tear, pu, countReads: false });
  }
  cases.push({ tear: 'random', pu: 8, countReads: true });

  for (const { tear, pu, countReads } of cases) {
    it(`cut at every op of ${N} appends, tear '${tear}', program unit ${pu}${countReads ? ', reads counted' : ''}`, () => {
      const layout = defaultLayout({ appSize: 1024, otaSize: 1024, splitSize: 256, sectorSize: 256, programUnit: pu });
      const setup = () => {
        const mem = new MemoryFlash(layout.flash);
        const ff = new FaultyFlash(mem, { tear, seed: 77, countReads });
        return { mem, ff, view: new PartitionView(ff, layout.params) };
      };
      // Clean run: how many counted ops does it take?
      const clean = setup();
      const cj = new Journal(clean.view);
      for (let i = 0; i < N; i++) cj.append(input(i));
      const total = clean.ff.ops;
      expect(total).toBeGreaterThan(N);

      const r = new Prng(pu * 1000 + total);
      for (let k = 0; k < total; k++) {
        const { mem, ff, view } = setup();
        ff.cutAt = k;
        // After a cut, records carry a different aux, so a resumed append never
        // rewrites the same bytes over a torn slot (which strict mode would accept).
        const attempt = (i: number, gen: number): JournalInput => ({ ...input(i), aux: (input(i).aux ^ Math.imul(gen, 0x5bd1e995)) >>> 0 });
        let lastDone: JournalEntry | null = null;
        let attempting: JournalEntry | null = null;
        let i = 0;
        let journal: Journal | null = null;
        let cuts = 0;
        // Run to the end, surviving up to two power cuts (the second one lands during recovery).
        while (i < N) {
          try {
            journal ??= new Journal(view);
            const inp = attempt(i, cuts);
            attempting = { seq: i + 1, ...inp };
            expect(journal.append(inp)).toEqual(attempting);
            lastDone = attempting;
            i++;
          } catch (e) {
            expect(e).toBeInstanceOf(PowerCutError);
            cuts++;
            ff.reboot();
            journal = new Journal(view);
            const latest = journal.latest();
            // Either the record being written or the one before it; never anything else.
            expect([lastDone, attempting]).toContainEqual(latest);
            // The state machine resumes after whatever the journal says.
            lastDone = latest;
            i = latest === null ? 0 : latest.seq;
            journal = null;
            if (cuts === 1) ff.scheduleCut(r.nextInt(12));
          }
        }
        expect(cuts).toBeGreaterThanOrEqual(1);
        ff.disarm();
        const final = new Journal(view);
        expect(final.latest()).toEqual(lastDone);
        expect(final.latest()?.seq).toBe(N);
        const seqs = final.entries().map((e) => e.seq);
        expect(new Set(seqs).size).toBe(seqs.length);
        // Hand-over sectors untouched.
        expect(mem.raw.subarray(layout.params.offset, layout.params.offset + 512).every((b) => b === 0xff)).toBe(true);
      }
    });
  }
});
