import { mkdtempSync, rmSync, statSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  eraseRange,
  FlashError,
  isErased,
  makeGeometry,
  readBytes,
  type Flash,
} from '../src/flash/flash.js';
import { MemoryFlash } from '../src/flash/memory-flash.js';
import { FileFlash } from '../src/flash/file-flash.js';
import { Prng } from '../src/flash/prng.js';

const tmp = mkdtempSync(join(tmpdir(), 'otadiff-flash-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('geometry', () => {
  it('fills defaults and freezes', () => {
    const g = makeGeometry({ size: 8192 });
    expect(g).toEqual({ size: 8192, sectors: [{ count: 2, size: 4096 }], programUnit: 1, erasedValue: 0xff });
    expect(Object.isFrozen(g)).toBe(true);
    expect(Object.isFrozen(g.sectors)).toBe(true);
  });

  it.each([
    [{ size: 0 }],
    [{ size: 4095 }],
    [{ size: 8192, sectorSize: 3000 }],
    [{ size: 8192, sectorSize: 0 }],
    [{ size: 8192, programUnit: 3 }],
    [{ size: 8192, programUnit: 0 }],
    [{ size: 8192, programUnit: -4 }],
    [{ size: 512, sectorSize: 256, programUnit: 512 }],
    [{ size: 1.5 * 4096 }],
    [{ size: Number.NaN }],
  ])('rejects %j', (g) => {
    expect(() => new MemoryFlash(g)).toThrow(FlashError);
  });
});

/** Shared behaviour, run against both implementations. */
function nor(name: string, make: (g: { size: number; sectorSize: number; programUnit: number }, mode?: 'error' | 'and') => Flash) {
  describe(`${name}: NOR semantics`, () => {
    it('starts erased, programs, erases one sector only', () => {
      const f = make({ size: 4 * 256, sectorSize: 256, programUnit: 4 });
      expect(isErased(f, 0, f.geometry.size)).toBe(true);
      f.program(256 + 8, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8));
      f.program(512, Uint8Array.of(0, 0, 0, 0));
      expect([...readBytes(f, 256 + 6, 12)]).toEqual([255, 255, 1, 2, 3, 4, 5, 6, 7, 8, 255, 255]);
      f.erase(1);
      expect(isErased(f, 256, 256)).toBe(true);
      expect([...readBytes(f, 512, 4)]).toEqual([0, 0, 0, 0]);
    });

    it('strict mode: only 1->0 transitions; a rejected program changes nothing', () => {
      const f = make({ size: 512, sectorSize: 256, programUnit: 2 });
      f.program(0, Uint8Array.of(0xf0, 0x0f));
      f.program(0, Uint8Array.of(0xf0, 0x0f)); // same value again: fine
      f.program(0, Uint8Array.of(0x30, 0x01)); // clears more bits: fine
      expect(() => f.program(0, Uint8Array.of(0x10, 0x03))).toThrow(/cannot program/);
      expect(() => f.program(0, Uint8Array.of(0xff, 0xff))).toThrow(FlashError);
      expect([...readBytes(f, 0, 2)]).toEqual([0x30, 0x01]);
      // A failing later byte must not leave the earlier bytes written.
      f.program(2, Uint8Array.of(0xff, 0x00));
      expect(() => f.program(2, Uint8Array.of(0x00, 0x01))).toThrow(FlashError);
      expect([...readBytes(f, 2, 2)]).toEqual([0xff, 0x00]);
    });

    it('AND mode: ANDs like real NOR', () => {
      const f = make({ size: 512, sectorSize: 256, programUnit: 1 }, 'and');
      f.program(10, Uint8Array.of(0xf0));
      f.program(10, Uint8Array.of(0x3c));
      f.program(11, Uint8Array.of(0x00));
      f.program(11, Uint8Array.of(0xff));
      expect([...readBytes(f, 10, 2)]).toEqual([0x30, 0x00]);
    });

    it('AND mode equals a byte-wise model over random op sequences', () => {
      fc.assert(
        fc.property(
          fc.array(
            fc.oneof(
              fc.record({ kind: fc.constant('p' as const), unit: fc.integer({ min: 0, max: 127 }), data: fc.uint8Array({ minLength: 4, maxLength: 4 }) }),
              fc.record({ kind: fc.constant('e' as const), sector: fc.integer({ min: 0, max: 1 }) }),
            ),
            { maxLength: 40 },
          ),
          (ops) => {
            const f = make({ size: 512, sectorSize: 256, programUnit: 4 }, 'and');
            const model = new Uint8Array(512).fill(0xff);
            for (const op of ops) {
              if (op.kind === 'p') {
                f.program(op.unit * 4, op.data);
                for (let i = 0; i < 4; i++) model[op.unit * 4 + i] &= op.data[i];
              } else {
                f.erase(op.sector);
                model.fill(0xff, op.sector * 256, op.sector * 256 + 256);
              }
            }
            expect(readBytes(f, 0, 512)).toEqual(model);
          },
        ),
        { numRuns: 60 },
      );
    });

    it('bounds and alignment errors, nothing changed', () => {
      const f = make({ size: 1024, sectorSize: 256, programUnit: 8 });
      const buf = new Uint8Array(16);
      const bad: Array<() => void> = [
        () => f.read(-1, buf),
        () => f.read(1.5, buf),
        () => f.read(1020, buf),
        () => f.read(0, buf, 8, 9),
        () => f.read(0, buf, -1, 1),
        () => f.read(0, buf, 17),
        () => f.read(Number.NaN, buf),
        () => f.program(4, new Uint8Array(8)),
        () => f.program(8, new Uint8Array(4)),
        () => f.program(1024, new Uint8Array(8)),
        () => f.program(1016, new Uint8Array(16)),
        () => f.program(-8, new Uint8Array(8)),
        () => f.erase(4),
        () => f.erase(-1),
        () => f.erase(0.5),
        () => eraseRange(f, 128, 256),
        () => eraseRange(f, 0, 100),
        () => eraseRange(f, 768, 512),
      ];
      for (const call of bad) expect(call).toThrow(FlashError);
      expect(isErased(f, 0, 1024)).toBe(true);
      // Edge cases that are legal.
      f.read(1024, buf, 0, 0);
      f.read(1008, buf);
      f.read(0, buf, 16);
      f.program(1016, new Uint8Array(8));
      f.program(0, new Uint8Array(0));
      buf.fill(0x11);
      f.read(1012, buf, 4, 8); // only dst[4..12) is written
      expect([...buf]).toEqual([17, 17, 17, 17, 255, 255, 255, 255, 0, 0, 0, 0, 17, 17, 17, 17]);
    });

    it('eraseRange erases exactly the covered sectors', () => {
      const f = make({ size: 1024, sectorSize: 256, programUnit: 1 });
      for (let s = 0; s < 4; s++) f.program(s * 256, Uint8Array.of(s));
      eraseRange(f, 256, 512);
      expect([...readBytes(f, 0, 1)]).toEqual([0]);
      expect(isErased(f, 256, 512)).toBe(true);
      expect([...readBytes(f, 768, 1)]).toEqual([3]);
    });
  });
}

nor('MemoryFlash', (g, mode) => new MemoryFlash(g, { onOverwrite: mode }));

let fileNo = 0;
const opened: FileFlash[] = [];
afterAll(() => opened.forEach((f) => f.close()));
nor('FileFlash', (g, mode) => {
  const f = FileFlash.open(join(tmp, `nor-${fileNo++}.bin`), g, { onOverwrite: mode });
  opened.push(f);
  return f;
});

describe('MemoryFlash', () => {
  it('takes initial contents (copied) and checks their size', () => {
    const contents = new Uint8Array(512).fill(0x5a);
    const f = new MemoryFlash({ size: 512, sectorSize: 256 }, { contents });
    contents[0] = 0;
    expect(readBytes(f, 0, 1)[0]).toBe(0x5a);
    expect(() => new MemoryFlash({ size: 512, sectorSize: 256 }, { contents: new Uint8Array(511) })).toThrow(FlashError);
  });
});

describe('FileFlash', () => {
  it('creates an erased image, persists across close/open', () => {
    const path = join(tmp, 'image.bin');
    const g = { size: 8192, sectorSize: 4096, programUnit: 4 };
    const f = FileFlash.open(path, g);
    expect(statSync(path).size).toBe(8192);
    expect(isErased(f, 0, 8192)).toBe(true);
    const data = new Uint8Array(4100);
    const r = new Prng(42);
    for (let i = 0; i < data.length; i++) data[i] = r.nextU32() & 0xff;
    f.program(40, data);
    f.erase(1);
    f.close();
    expect(f.isOpen).toBe(false);
    expect(() => f.read(0, new Uint8Array(1))).toThrow(/closed/);
    f.close(); // idempotent

    const onDisk = readFileSync(path);
    expect(new Uint8Array(onDisk.subarray(40, 4096))).toEqual(data.subarray(0, 4096 - 40));
    expect(onDisk.subarray(4096).every((b) => b === 0xff)).toBe(true);

    const g2 = FileFlash.open(path, g, { fsync: true });
    expect(readBytes(g2, 40, 4096 - 40)).toEqual(data.subarray(0, 4096 - 40));
    expect(() => g2.program(40, Uint8Array.of(1, 1, 1, 1))).toThrow(FlashError);
    g2.program(4096, Uint8Array.of(1, 2, 3, 4));
    g2.close();
    expect([...readFileSync(path).subarray(4096, 4100)]).toEqual([1, 2, 3, 4]);
  });

  it('rejects an existing image of the wrong size', () => {
    const path = join(tmp, 'short.bin');
    writeFileSync(path, new Uint8Array(100));
    expect(() => FileFlash.open(path, { size: 4096 })).toThrow(/100 bytes, expected 4096/);
  });
});
