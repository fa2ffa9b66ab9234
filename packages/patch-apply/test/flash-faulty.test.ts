import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileFlash } from '../src/flash/file-flash.js';
import { FlashError, PowerCutError, readBytes } from '../src/flash/flash.js';
import { MemoryFlash } from '../src/flash/memory-flash.js';
import { FaultyFlash, type TearMode } from '../src/flash/faulty-flash.js';
import { Prng } from '../src/flash/prng.js';

const G = { size: 4 * 64, sectorSize: 64, programUnit: 4 };

type Op = { kind: 'program'; offset: number; data: Uint8Array } | { kind: 'erase'; sector: number } | { kind: 'read'; offset: number; length: number };

/** A scripted sequence that is legal in strict mode, with the state after each op. */
function buildScript(seed: number): { initial: Uint8Array; ops: Op[]; snaps: Uint8Array[] } {
  const r = new Prng(seed);
  const initial = new Uint8Array(G.size);
  for (let i = 0; i < initial.length; i++) initial[i] = r.nextU32() & 0xff;
  const model = initial.slice();
  const ops: Op[] = [];
  const snaps = [model.slice()];
  for (let n = 0; n < 40; n++) {
    const pick = r.nextInt(5);
    let op: Op;
    if (pick === 0) {
      const sector = r.nextInt(4);
      op = { kind: 'erase', sector };
      model.fill(0xff, sector * 64, sector * 64 + 64);
    } else if (pick === 1) {
      op = { kind: 'read', offset: r.nextInt(G.size - 8), length: 8 };
    } else {
      const units = 1 + r.nextInt(8);
      const offset = r.nextInt(G.size / 4 - units + 1) * 4;
      const data = new Uint8Array(units * 4);
      // Only clear bits, so the op is legal whatever the state.
      for (let i = 0; i < data.length; i++) data[i] = model[offset + i] & (r.nextU32() & 0xff);
      op = { kind: 'program', offset, data };
      for (let i = 0; i < data.length; i++) model[offset + i] = data[i];
    }
    ops.push(op);
    snaps.push(model.slice());
  }
  return { initial, ops, snaps };
}

/** Index of the first differing byte, -1 if equal (cheap compared to deep-equal matchers). */
function firstDiff(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** First index where `ok` fails, -1 if it holds everywhere. */
function firstBad(n: number, ok: (i: number) => boolean): number {
  for (let i = 0; i < n; i++) if (!ok(i)) return i;
  return -1;
}

function run(f: FaultyFlash, op: Op): void {
  if (op.kind === 'program') f.program(op.offset, op.data);
  else if (op.kind === 'erase') f.erase(op.sector);
  else f.read(op.offset, new Uint8Array(op.length));
}

function opRange(op: Op): [number, number] {
  if (op.kind === 'program') return [op.offset, op.offset + op.data.length];
  if (op.kind === 'erase') return [op.sector * 64, op.sector * 64 + 64];
  return [op.offset, op.offset];
}

/** Asserts `actual` is a legal torn state between `before` and `after` for the mode. */
function checkTorn(mode: TearMode, op: Op, before: Uint8Array, after: Uint8Array, actual: Uint8Array): boolean {
  const [a, b] = opRange(op);
  expect(firstBad(actual.length, (i) => (i >= a && i < b) || actual[i] === before[i])).toBe(-1);
  const region = actual.subarray(a, b);
  const old = before.subarray(a, b);
  const neu = after.subarray(a, b);
  switch (mode) {
    case 'none':
      expect(firstDiff(region, old)).toBe(-1);
      break;
    case 'random':
      expect(firstBad(region.length, (i) => region[i] === old[i] || region[i] === neu[i])).toBe(-1);
      break;
    case 'prefix': {
      let p = 0;
      while (p < region.length && region[p] === neu[p]) p++;
      p -= p % G.programUnit;
      expect(firstDiff(region.subarray(0, p), neu.subarray(0, p))).toBe(-1);
      expect(firstDiff(region.subarray(p), old.subarray(p))).toBe(-1);
      break;
    }
    case 'bits':
      // Every bit is at its old or its new value.
      expect(
        firstBad(region.length, (i) => (region[i] & (old[i] | neu[i])) === region[i] && (region[i] | (old[i] & neu[i])) === region[i]),
      ).toBe(-1);
      break;
  }
  // Did the tear produce something that is neither the before nor the after state?
  let differsBefore = false;
  let differsAfter = false;
  for (let i = 0; i < region.length; i++) {
    if (region[i] !== old[i]) differsBefore = true;
    if (region[i] !== neu[i]) differsAfter = true;
  }
  return differsBefore && differsAfter;
}

const MODES: TearMode[] = ['none', 'prefix', 'random', 'bits'];

describe('FaultyFlash', () => {
  const { initial, ops, snaps } = buildScript(2024);
  const destructive = ops.filter((o) => o.kind !== 'read');

  it("'never' mode counts a clean run", () => {
    const inner = new MemoryFlash(G, { contents: initial });
    const f = new FaultyFlash(inner);
    for (const op of ops) run(f, op);
    expect(inner.raw).toEqual(snaps[ops.length]);
    expect(f.ops).toBe(destructive.length);
    expect(f.reads).toBe(ops.length - destructive.length);
    const programs = ops.filter((o) => o.kind === 'program');
    expect(f.programs).toBe(programs.length);
    expect(f.bytesProgrammed).toBe(programs.reduce((n, o) => n + (o.kind === 'program' ? o.data.length : 0), 0));
    const wear = new Uint32Array(4);
    for (const o of ops) if (o.kind === 'erase') wear[o.sector]++;
    expect(f.erases).toEqual(wear);
    expect(f.totalErases).toBe(wear.reduce((a, b) => a + b, 0));
    expect(f.isDown).toBe(false);
  });

  for (const tear of MODES) {
    for (const countReads of [false, true]) {
      it(`cut at every op, tear '${tear}'${countReads ? ', reads counted' : ''}`, () => {
        const counted = countReads ? ops : destructive;
        let nonTrivial = 0;
        for (let k = 0; k < counted.length; k++) {
          for (const seed of [1, 2, 3]) {
            const inner = new MemoryFlash(G, { contents: initial });
            const f = new FaultyFlash(inner, { cutAt: k, tear, seed, countReads });
            let counter = 0;
            let cutIndex = -1;
            for (let i = 0; i < ops.length; i++) {
              const isCounted = countReads || ops[i].kind !== 'read';
              if (cutIndex >= 0) {
                expect(() => run(f, ops[i])).toThrow(PowerCutError);
              } else if (isCounted && counter === k) {
                expect(() => run(f, ops[i])).toThrow(PowerCutError);
                cutIndex = i;
              } else {
                run(f, ops[i]);
                // Everything before the cut took effect fully.
                expect(firstDiff(inner.raw, snaps[i + 1])).toBe(-1);
              }
              if (isCounted) counter++;
            }
            expect(cutIndex).toBeGreaterThanOrEqual(0);
            const cutOp = ops[cutIndex];
            expect(f.isDown).toBe(true);
            expect(f.ops).toBe(k + 1);
            expect(f.lastCut).toMatchObject({ op: k, kind: cutOp.kind, offset: opRange(cutOp)[0] });
            expect(() => f.read(0, new Uint8Array(1))).toThrow(PowerCutError);
            expect(() => f.erase(0)).toThrow(PowerCutError);
            if (checkTorn(tear, cutOp, snaps[cutIndex], snaps[cutIndex + 1], inner.raw)) nonTrivial++;

            // Counters include the cut op, nothing after it.
            const done = ops.slice(0, cutIndex + 1);
            expect(f.programs).toBe(done.filter((o) => o.kind === 'program').length);
            const wear = new Uint32Array(4);
            for (const o of done) if (o.kind === 'erase') wear[o.sector]++;
            expect(f.erases).toEqual(wear);

            const frozen = inner.raw.slice();
            f.reboot();
            expect(f.isDown).toBe(false);
            expect(firstDiff(readBytes(f, 0, G.size), frozen)).toBe(-1);
            // One-shot: the device keeps working after the reboot.
            f.erase(0);
            expect(f.isDown).toBe(false);
          }
        }
        if (tear === 'none') expect(nonTrivial).toBe(0);
        else expect(nonTrivial).toBeGreaterThan(3);
      });
    }
  }

  it('is deterministic from the seed', () => {
    const tornState = (seed: number, k: number, tear: TearMode) => {
      const inner = new MemoryFlash(G, { contents: initial });
      const f = new FaultyFlash(inner, { cutAt: k, tear, seed });
      try {
        for (const op of ops) run(f, op);
      } catch (e) {
        expect(e).toBeInstanceOf(PowerCutError);
      }
      return inner.raw.slice();
    };
    let differ = 0;
    for (const tear of ['prefix', 'random', 'bits'] as const) {
      for (let k = 0; k < destructive.length; k++) {
        expect(tornState(11, k, tear)).toEqual(tornState(11, k, tear));
        if (!tornState(11, k, tear).every((b, i) => b === tornState(12, k, tear)[i])) differ++;
      }
    }
    expect(differ).toBeGreaterThan(5);
  });

  it('a strict-mode violation at the cut point is a FlashError and the cut stays armed', () => {
    const inner = new MemoryFlash(G);
    inner.program(0, Uint8Array.of(0, 0, 0, 0));
    const f = new FaultyFlash(inner, { cutAt: 1 });
    f.program(4, Uint8Array.of(1, 1, 1, 1));
    expect(() => f.program(0, Uint8Array.of(1, 1, 1, 1))).toThrow(FlashError);
    expect(f.isDown).toBe(false);
    expect(f.ops).toBe(1);
    expect(() => f.program(8, Uint8Array.of(1, 1, 1, 1))).toThrow(PowerCutError);
    expect(f.lastCut?.op).toBe(1);
  });

  it('validation errors are not counted and do not trigger the cut', () => {
    const f = new FaultyFlash(new MemoryFlash(G), { cutAt: 0 });
    expect(() => f.program(2, new Uint8Array(4))).toThrow(FlashError);
    expect(() => f.erase(99)).toThrow(FlashError);
    expect(f.ops).toBe(0);
    expect(f.isDown).toBe(false);
    expect(() => f.erase(0)).toThrow(PowerCutError);
  });

  it('scheduleCut / disarm', () => {
    const f = new FaultyFlash(new MemoryFlash(G), { tear: 'none' });
    f.erase(0);
    f.scheduleCut(2);
    f.erase(1);
    f.erase(2);
    expect(() => f.erase(3)).toThrow(PowerCutError);
    expect(f.lastCut?.op).toBe(3);
    f.reboot();
    f.scheduleCut(0);
    f.disarm();
    f.erase(0);
    expect(f.ops).toBe(5);
    expect(() => new FaultyFlash(new MemoryFlash(G), { cutAt: -1 })).toThrow(FlashError);
  });

  it('tears a file-backed flash the same way, and the torn state survives reopening', () => {
    const dir = mkdtempSync(join(tmpdir(), 'otadiff-faulty-'));
    try {
      for (const k of [0, 3, 7, destructive.length - 1]) {
        const mem = new MemoryFlash(G, { contents: initial });
        const path = join(dir, `k${k}.bin`);
        const file = FileFlash.open(path, G);
        file.erase(0);
        file.erase(1);
        file.erase(2);
        file.erase(3);
        for (let i = 0; i < G.size; i += 4) file.program(i, initial.subarray(i, i + 4));
        const fm = new FaultyFlash(mem, { cutAt: k, tear: 'bits', seed: 5 });
        const ff = new FaultyFlash(file, { cutAt: k, tear: 'bits', seed: 5 });
        for (const op of ops) {
          try {
            run(fm, op);
          } catch (e) {
            expect(e).toBeInstanceOf(PowerCutError);
          }
          try {
            run(ff, op);
          } catch (e) {
            expect(e).toBeInstanceOf(PowerCutError);
          }
        }
        file.close();
        const reopened = FileFlash.open(path, G);
        expect(firstDiff(readBytes(reopened, 0, G.size), mem.raw)).toBe(-1);
        reopened.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
