// Sector maps, erased values, the program-once rule, flash profiles, and torn units on ECC flash.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  describeSectors,
  FlashError,
  isSectorBoundary,
  makeGeometry,
  PowerCutError,
  readBytes,
  sectorAt,
  sectorCeil,
  sectorCount,
  sectorLength,
  sectorStart,
  subGeometry,
} from '../src/flash/flash.js';
import { MemoryFlash } from '../src/flash/memory-flash.js';
import { FileFlash } from '../src/flash/file-flash.js';
import { FaultyFlash } from '../src/flash/faulty-flash.js';
import { WearMeter } from '../src/flash/wear-meter.js';
import { FLASH_PROFILES, flashProfile, PROFILE_NAMES, programMs } from '../src/flash/profiles.js';
import { patternCeil, patternGeometry } from '../src/flash/sector-pattern.js';
import { defaultLayout, openPartition, validateLayout } from '../src/flash/partition-layout.js';
import { createFlashDir, openFlashDir, parseLayoutJson } from '../src/flash/flash-dir.js';

const K = 1024;
const F4 = { runs: [{ count: 4, size: 16 * K }, { count: 1, size: 64 * K }], then: 128 * K };
const tmp = mkdtempSync(join(tmpdir(), 'otadiff-geometry-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('sector maps', () => {
  const g = makeGeometry({ size: 512 * K, sectors: [{ count: 4, size: 16 * K }, { count: 1, size: 64 * K }, { count: 3, size: 128 * K }] });

  it('locates sectors on an uneven map', () => {
    expect(sectorCount(g)).toBe(8);
    expect([0, 3, 4, 5, 7].map((s) => [sectorStart(g, s), sectorLength(g, s)])).toEqual([
      [0, 16 * K],
      [48 * K, 16 * K],
      [64 * K, 64 * K],
      [128 * K, 128 * K],
      [384 * K, 128 * K],
    ]);
    expect(sectorStart(g, 8)).toBe(g.size);
    expect([0, 16 * K - 1, 16 * K, 100 * K, 511 * K].map((o) => sectorAt(g, o))).toEqual([0, 0, 1, 4, 7]);
    expect(isSectorBoundary(g, 64 * K)).toBe(true);
    expect(isSectorBoundary(g, 96 * K)).toBe(false);
    expect(isSectorBoundary(g, g.size)).toBe(true);
    expect(sectorCeil(g, 65 * K)).toBe(128 * K);
    expect(sectorCeil(g, 128 * K)).toBe(128 * K);
    expect(describeSectors(g)).toBe('4x16K, 64K, 3x128K');
    expect(() => sectorAt(g, g.size)).toThrow(FlashError);
    expect(() => sectorLength(g, 8)).toThrow(FlashError);
  });

  it('merges equal runs, cuts sub-maps on boundaries only', () => {
    expect(makeGeometry({ size: 8 * K, sectors: [{ count: 1, size: 4 * K }, { count: 0, size: 2 * K }, { count: 1, size: 4 * K }] }).sectors).toEqual([{ count: 2, size: 4 * K }]);
    expect(subGeometry(g, 48 * K, 208 * K).sectors).toEqual([{ count: 1, size: 16 * K }, { count: 1, size: 64 * K }, { count: 1, size: 128 * K }]);
    expect(() => subGeometry(g, 32 * K, 48 * K)).toThrow(/sector boundaries/);
  });

  it.each([
    [{ size: 10 * K, sectors: [{ count: 2, size: 4 * K }] }, /sector map's 8192 bytes/],
    [{ size: 4 * K, sectors: [{ count: 1.5, size: 4 * K }] }, /whole count/],
    [{ size: 4 * K, sectors: [{ count: 1, size: -4 * K }] }, /positive size/],
    [{ size: 4 * K, sectorSize: 4 * K, sectors: [{ count: 1, size: 4 * K }] }, /not both/],
    [{ size: 4 * K, programUnit: 64 }, /<= 32/],
    [{ size: 4 * K, erasedValue: 0x55 }, /erasedValue/],
    [{ size: 3 * K, sectors: [{ count: 1, size: 1000 }, { count: 1, size: 2072 }], programUnit: 16 }, /multiple of the program unit/],
  ])('rejects %j', (input, msg) => {
    expect(() => makeGeometry(input)).toThrow(msg);
  });

  it('an erase on an uneven map clears exactly its sector', () => {
    const f = new MemoryFlash(g, { contents: new Uint8Array(g.size).fill(0x11) });
    f.erase(4);
    expect(f.raw[64 * K - 1]).toBe(0x11);
    expect(f.raw.subarray(64 * K, 128 * K).every((b) => b === 0xff)).toBe(true);
    expect(f.raw[128 * K]).toBe(0x11);
    expect(() => f.erase(8)).toThrow(FlashError);
  });

  it('a sector pattern gives the geometry of any prefix on its boundaries', () => {
    expect(patternCeil(F4, 1)).toBe(16 * K);
    expect(patternCeil(F4, 70 * K)).toBe(128 * K);
    expect(patternCeil(F4, 129 * K)).toBe(256 * K);
    expect(patternGeometry(F4, 256 * K, 4, 0xff).sectors).toEqual([{ count: 4, size: 16 * K }, { count: 1, size: 64 * K }, { count: 1, size: 128 * K }]);
    expect(() => patternGeometry(F4, 100 * K, 4, 0xff)).toThrow(/boundary/);
  });
});

describe('erased value 0x00', () => {
  const g = { size: 4 * 256, sectorSize: 256, programUnit: 4, erasedValue: 0 };

  it('starts and erases to 0x00, programs set bits, the strict mode refuses to clear one', () => {
    const f = new MemoryFlash(g);
    expect(f.raw.every((b) => b === 0)).toBe(true);
    f.program(0, Uint8Array.of(0x81, 0, 0, 0));
    f.program(0, Uint8Array.of(0x81, 0x10, 0, 0)); // only 0 -> 1 transitions: legal NOR
    expect([...f.raw.subarray(0, 4)]).toEqual([0x81, 0x10, 0, 0]);
    expect(() => f.program(0, Uint8Array.of(0x01, 0x10, 0, 0))).toThrow(/without an erase/);
    const and = new MemoryFlash(g, { onOverwrite: 'and' });
    and.program(0, Uint8Array.of(0x81, 0, 0, 0));
    and.program(0, Uint8Array.of(0x02, 0, 0, 0));
    expect(and.raw[0]).toBe(0x83); // merges toward the programmed state: OR on 0x00 flash
    f.erase(0);
    expect(f.raw[0]).toBe(0);
  });

  it('a file-backed flash is created erased to 0x00 and keeps its map', () => {
    const path = join(tmp, 'zero.bin');
    const f = FileFlash.open(path, { size: 80 * K, sectors: [{ count: 4, size: 16 * K }, { count: 1, size: 16 * K }], erasedValue: 0 });
    f.program(20 * K, Uint8Array.of(7));
    f.close();
    const bytes = readFileSync(path);
    expect(bytes.length).toBe(80 * K);
    expect(bytes[20 * K]).toBe(7);
    expect(bytes.every((b, i) => i === 20 * K || b === 0)).toBe(true);
  });
});

describe('program-once (ECC) flash', () => {
  const g = { size: 4 * 256, sectorSize: 256, programUnit: 8 };

  it('programs a unit once after an erase: the same value again is PROGERR', () => {
    const f = new MemoryFlash(g, { onOverwrite: 'program-once' });
    const v = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);
    f.program(8, v);
    expect(() => f.program(8, v)).toThrow(/PROGERR/);
    expect(() => f.program(8, new Uint8Array(8))).toThrow(/PROGERR/);
    // A unit whose padding is still erased is not erased as a whole either.
    f.program(16, Uint8Array.of(1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff));
    expect(() => f.program(16, Uint8Array.of(1, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))).toThrow(/PROGERR/);
    // Nothing changed by a refused program; a zero-length one is fine; an erase makes the unit writable.
    expect([...f.raw.subarray(8, 16)]).toEqual([...v]);
    f.program(24, new Uint8Array(0));
    f.erase(0);
    f.program(8, v);
  });

  it('a cut program leaves units undefined: they read as anything and refuse a program until erased', () => {
    let undefinedSeen = 0;
    for (let seed = 1; seed <= 20; seed++) {
      const mem = new MemoryFlash(g, { onOverwrite: 'program-once' });
      const f = new FaultyFlash(mem, { cutAt: 0, tear: 'bits', seed });
      const data = new Uint8Array(32).fill(0x42);
      expect(() => f.program(32, data)).toThrow(PowerCutError);
      f.reboot();
      expect(f.undefinedUnitCount).toBe(4);
      const a = readBytes(f, 32, 32);
      const b = readBytes(f, 32, 32);
      expect(Buffer.compare(a, b)).not.toBe(0); // fresh random bytes on every read
      expect(() => f.program(32, data)).toThrow(/PROGERR/);
      expect(() => f.program(40, data.subarray(0, 8))).toThrow(/PROGERR/);
      f.erase(0);
      expect(f.undefinedUnitCount).toBe(0);
      f.program(32, data);
      expect([...readBytes(f, 32, 32)]).toEqual([...data]);
      undefinedSeen++;
    }
    expect(undefinedSeen).toBe(20);
  });

  it("a cut with 'prefix' tear: units before the cut done, the one at it undefined, the rest erased", () => {
    let partial = 0;
    for (let seed = 1; seed <= 30; seed++) {
      const f = new FaultyFlash(new MemoryFlash(g, { onOverwrite: 'program-once' }), { cutAt: 0, tear: 'prefix', seed });
      const data = Uint8Array.from({ length: 64 }, (_, i) => i);
      expect(() => f.program(0, data)).toThrow(PowerCutError);
      f.reboot();
      const n = f.undefinedUnitCount;
      expect(n).toBeLessThanOrEqual(1);
      const got = readBytes(f, 0, 64);
      // Find the cut unit: every unit before it is done, every unit after it erased.
      let k = 0;
      while (k < 8 && got.subarray(k * 8, k * 8 + 8).every((x, i) => x === data[k * 8 + i])) k++;
      for (let j = k + n; j < 8; j++) expect(got.subarray(j * 8, j * 8 + 8).every((x) => x === 0xff)).toBe(true);
      if (n === 1 && k > 0) partial++;
    }
    expect(partial).toBeGreaterThan(3);
  });

  it('a cut erase leaves units undefined too, and a program into a unit that is not erased is refused at the cut as well', () => {
    const mem = new MemoryFlash(g, { onOverwrite: 'program-once', contents: new Uint8Array(g.size).fill(0x33) });
    const f = new FaultyFlash(mem, { cutAt: 0, tear: 'random', seed: 9 });
    expect(() => f.erase(1)).toThrow(PowerCutError);
    f.reboot();
    expect(f.undefinedUnitCount).toBeGreaterThan(0);
    const g2 = new FaultyFlash(new MemoryFlash(g, { onOverwrite: 'program-once', contents: new Uint8Array(g.size).fill(0x33) }), { cutAt: 0 });
    expect(() => g2.program(0, new Uint8Array(8))).toThrow(FlashError);
    expect(g2.ops).toBe(0); // refused like the device refuses it: not counted, the cut still armed
  });
});

describe('flash profiles', () => {
  it('has the parts the restore is proven on, with datasheet figures', () => {
    expect(PROFILE_NAMES).toEqual(['spi-nor-4k', 'stm32f4', 'stm32l4', 'stm32h7', 'nrf52']);
    expect(flashProfile('stm32f4').sectors).toEqual(F4);
    expect(flashProfile('stm32l4')).toMatchObject({ programUnit: 8, overwrite: 'program-once' });
    expect(flashProfile('stm32h7')).toMatchObject({ programUnit: 32, overwrite: 'program-once', sectors: { then: 128 * K } });
    expect(flashProfile('nrf52')).toMatchObject({ programUnit: 4, sectors: { then: 4 * K } });
    for (const p of FLASH_PROFILES) {
      expect(p.endurance).toBeGreaterThanOrEqual(10_000);
      expect(p.timing.eraseMs(p.sectors.then)).toBeGreaterThan(1);
      expect(programMs(p.timing, 4096)).toBeGreaterThan(0);
    }
    expect(flashProfile('stm32f4').timing.eraseMs(16 * K)).toBeLessThan(flashProfile('stm32f4').timing.eraseMs(128 * K));
    expect(() => flashProfile('stm32f9')).toThrow(/unknown flash profile 'stm32f9' \(known: spi-nor-4k, stm32f4/);
  });

  it('lays out a device on an uneven map: every partition on sector boundaries', () => {
    const l = defaultLayout({ appSize: 200 * K, otaSize: 50 * K, splitSize: 64 * K, sectors: F4, programUnit: 4 });
    validateLayout(l);
    expect(l.appA).toEqual({ name: 'appA', offset: 0, size: 256 * K }); // 4x16K + 64K + 128K
    expect(l.ota).toEqual({ name: 'ota', offset: 256 * K, size: 128 * K });
    expect(openPartition(new MemoryFlash(l.flash), l, 'params').geometry.sectors).toEqual([{ count: 4, size: 128 * K }]);
  });

  it('the wear meter counts erases per sector, bytes and the modelled time', () => {
    const p = flashProfile('stm32f4');
    const l = defaultLayout({ appSize: 200 * K, otaSize: 50 * K, splitSize: 64 * K, sectors: p.sectors, programUnit: 4 });
    const m = new WearMeter(new MemoryFlash(l.flash), p.timing);
    m.erase(0);
    m.erase(4);
    m.erase(4);
    m.program(0, new Uint8Array(8));
    const w = m.figures();
    expect(w).toMatchObject({ erases: 3, programs: 1, bytesProgrammed: 8, maxErasesPerSector: 2, busiestSector: 4, erasesBySector: { '0': 1, '4': 2 } });
    expect(w.eraseMs).toBeCloseTo(250 + 2 * 550);
    expect(w.programMs).toBeCloseTo(0.032);
  });
});

describe('flash directories', () => {
  it('keep the sector map, erased value and overwrite rule; read older layouts with a sector size', () => {
    const l = defaultLayout({ appSize: 40 * K, otaSize: 20 * K, splitSize: 16 * K, sectors: F4, programUnit: 8, erasedValue: 0 });
    const d = createFlashDir(join(tmp, 'dev'), l, { overwrite: 'program-once', profile: 'custom-f4' });
    d.close();
    const again = openFlashDir(join(tmp, 'dev'));
    expect(again.layout).toEqual(l);
    expect(again.device).toEqual({ overwrite: 'program-once', profile: 'custom-f4' });
    expect(again.flash.onOverwrite).toBe('program-once');
    again.close();
    const old = parseLayoutJson(
      JSON.stringify({
        flash: { size: 16 * 4096, sectorSize: 4096, programUnit: 1 },
        appA: { offset: 0, size: 6 * 4096 },
        ota: { offset: 6 * 4096, size: 4 * 4096 },
        params: { offset: 10 * 4096, size: 4 * 4096 },
        backup: { offset: 14 * 4096, size: 2 * 4096 },
      }),
    );
    expect(old.flash.sectors).toEqual([{ count: 16, size: 4096 }]);
    for (const bad of [{ size: 4096, programUnit: 1 }, { size: 4096, sectorSize: 4096, sectors: [], programUnit: 1 }, { size: 4096, sectors: 'x', programUnit: 1 }, { size: 4096, sectorSize: 4096, programUnit: 1, erasedValue: 7 }]) {
      expect(() => parseLayoutJson(JSON.stringify({ ...JSON.parse(JSON.stringify(old)), flash: bad }))).toThrow(/layout/);
    }
  });
});
