import { describe, expect, it } from 'vitest';
import { FlashError, makeGeometry, PowerCutError, readBytes } from '../src/flash/flash.js';
import { MemoryFlash } from '../src/flash/memory-flash.js';
import { FaultyFlash } from '../src/flash/faulty-flash.js';
import {
  defaultLayout,
  LayoutError,
  openPartition,
  PARAMS_MIN_SECTORS,
  PartitionView,
  validateLayout,
  type PartitionLayout,
} from '../src/flash/partition-layout.js';

const SS = 4096;
const good: PartitionLayout = {
  flash: makeGeometry({ size: 16 * SS, sectorSize: SS, programUnit: 4 }),
  appA: { name: 'appA', offset: 0, size: 6 * SS },
  ota: { name: 'ota', offset: 6 * SS, size: 4 * SS },
  params: { name: 'params', offset: 10 * SS, size: 4 * SS },
  backup: { name: 'backup', offset: 14 * SS, size: 2 * SS },
};

describe('validateLayout', () => {
  it('accepts a good layout, with or without slot B', () => {
    validateLayout(good);
    validateLayout({ ...good, flash: makeGeometry({ size: 20 * SS, sectorSize: SS, programUnit: 4 }), appB: { name: 'appB', offset: 16 * SS, size: 4 * SS } });
  });

  const bad: Array<[string, PartitionLayout, RegExp]> = [
    ['overlap', { ...good, ota: { name: 'ota', offset: 5 * SS, size: 4 * SS } }, /'appA' and 'ota' overlap/],
    ['overlap with B', { ...good, appB: { name: 'appB', offset: 13 * SS, size: 2 * SS } }, /overlap/],
    ['contained', { ...good, backup: { name: 'backup', offset: SS, size: SS } }, /overlap/],
    ['misaligned offset', { ...good, backup: { name: 'backup', offset: 14 * SS + 512, size: SS } }, /sector boundaries/],
    ['misaligned size', { ...good, backup: { name: 'backup', offset: 14 * SS, size: SS + 1 } }, /sector boundaries/],
    ['out of bounds', { ...good, backup: { name: 'backup', offset: 14 * SS, size: 3 * SS } }, /past the flash end/],
    ['negative', { ...good, backup: { name: 'backup', offset: -SS, size: SS } }, /bad offset/],
    ['empty', { ...good, backup: { name: 'backup', offset: 14 * SS, size: 0 } }, /bad size/],
    ['fractional', { ...good, backup: { name: 'backup', offset: 14 * SS + 0.5, size: SS } }, /bad offset/],
    ['params too small', { ...good, params: { name: 'params', offset: 10 * SS, size: 3 * SS } }, /at least 4 sectors/],
    ['bad geometry', { ...good, flash: { ...good.flash, programUnit: 3 } }, /geometry/],
  ];
  it.each(bad)('rejects %s', (_name, layout, msg) => {
    expect(() => validateLayout(layout)).toThrow(LayoutError);
    expect(() => validateLayout(layout)).toThrow(msg);
  });
});

describe('defaultLayout', () => {
  it('packs the partitions and sizes the backup ring to two chunks and eight sectors in place (or a third of the slot)', () => {
    const l = defaultLayout({ appSize: 100_000, otaSize: 50_000, splitSize: 65536 });
    expect(l.appA).toEqual({ name: 'appA', offset: 0, size: 25 * SS });
    expect(l.appB).toBeUndefined();
    expect(l.ota).toEqual({ name: 'ota', offset: 25 * SS, size: 13 * SS });
    expect(l.params).toEqual({ name: 'params', offset: 38 * SS, size: PARAMS_MIN_SECTORS * SS });
    expect(l.backup).toEqual({ name: 'backup', offset: 42 * SS, size: 40 * SS });
    expect(l.flash).toEqual(makeGeometry({ size: 82 * SS, sectorSize: SS, programUnit: 1 }));
    expect(defaultLayout({ appSize: 3_000_000, otaSize: 1, splitSize: 65536 }).backup.size).toBe(Math.ceil(1_000_000 / SS) * SS);
    expect(defaultLayout({ appSize: 100_000, otaSize: 1, splitSize: 65536, backupSize: 5 * SS }).backup.size).toBe(5 * SS);
  });

  it('A/B adds a second slot of the same size', () => {
    const l = defaultLayout({ appSize: 8192, otaSize: 4096, splitSize: 1000, sectorSize: 1024, programUnit: 8, ab: true });
    expect(l.appB).toEqual({ name: 'appB', offset: 8192, size: 8192 });
    expect(l.backup.size).toBe(1024);
    validateLayout(l);
  });

  it('rejects bad sizes', () => {
    expect(() => defaultLayout({ appSize: 0, otaSize: 1, splitSize: 1 })).toThrow(LayoutError);
    expect(() => defaultLayout({ appSize: 1, otaSize: 1, splitSize: -5 })).toThrow(LayoutError);
    expect(() => defaultLayout({ appSize: 1, otaSize: 1, splitSize: 1, sectorSize: 1000, programUnit: 16 })).toThrow(LayoutError);
  });
});

describe('PartitionView', () => {
  const layout = defaultLayout({ appSize: 2048, otaSize: 1024, splitSize: 512, sectorSize: 512, programUnit: 4 });

  it('translates offsets and sectors and stays inside the partition', () => {
    const mem = new MemoryFlash(layout.flash);
    const ota = openPartition(mem, layout, 'ota');
    expect(ota.geometry).toEqual(makeGeometry({ size: 1024, sectorSize: 512, programUnit: 4 }));
    ota.program(516, Uint8Array.of(1, 2, 3, 4));
    expect([...mem.raw.subarray(layout.ota.offset + 516, layout.ota.offset + 520)]).toEqual([1, 2, 3, 4]);
    expect([...readBytes(ota, 514, 8)]).toEqual([255, 255, 1, 2, 3, 4, 255, 255]);
    mem.raw[layout.ota.offset] = 0;
    mem.raw[layout.appA.offset + layout.appA.size - 1] = 0; // neighbour
    ota.erase(0);
    expect(mem.raw[layout.ota.offset]).toBe(0xff);
    expect(mem.raw[layout.appA.offset + layout.appA.size - 1]).toBe(0);
    ota.erase(1);
    expect(mem.raw[layout.ota.offset + 516]).toBe(0xff);

    expect(() => ota.erase(2)).toThrow(FlashError);
    expect(() => ota.read(1020, new Uint8Array(8))).toThrow(FlashError);
    expect(() => ota.program(1024, new Uint8Array(4))).toThrow(FlashError);
    expect(() => ota.program(2, new Uint8Array(4))).toThrow(FlashError);
    expect(() => ota.read(-1, new Uint8Array(1))).toThrow(FlashError);
  });

  it('passes power cuts and the overwrite mode through', () => {
    const ff = new FaultyFlash(new MemoryFlash(layout.flash, { onOverwrite: 'and' }), { cutAt: 1, tear: 'none' });
    const backup = openPartition(ff, layout, 'backup');
    expect(backup.onOverwrite).toBe('and');
    backup.erase(0);
    expect(() => backup.program(0, new Uint8Array(4))).toThrow(PowerCutError);
    expect(ff.lastCut).toMatchObject({ kind: 'program', offset: layout.backup.offset });
  });

  it('rejects a partition that does not fit the flash', () => {
    const mem = new MemoryFlash(layout.flash);
    expect(() => new PartitionView(mem, { name: 'x', offset: 256, size: 512 })).toThrow(FlashError);
    expect(() => new PartitionView(mem, { name: 'x', offset: layout.flash.size, size: 512 })).toThrow(FlashError);
    expect(() => new PartitionView(mem, { name: 'x', offset: 0, size: 0 })).toThrow(FlashError);
    expect(() => openPartition(mem, layout, 'appB')).toThrow(LayoutError);
    expect(() => openPartition(new MemoryFlash({ size: layout.flash.size, sectorSize: 256 }), layout, 'ota')).toThrow(LayoutError);
  });
});
