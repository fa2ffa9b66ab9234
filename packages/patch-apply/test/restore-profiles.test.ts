// The boot-side restore on real flash: every profile (uneven sectors, program-once ECC units, 32-byte
// flash words), erased value 0x00, sectors larger than a chunk or straddling chunk boundaries, the backup
// ring and its wear, and the refusals before the first erase.
import { describe, expect, it } from 'vitest';
import { generatePackage, packRaw } from '@otadiff/diff-gen';
import { boot } from '../src/restore/boot-restore.js';
import { prepareDevice, runPowercut } from '../src/restore/powercut.js';
import { inPlaceGroups } from '../src/restore/inplace-restore.js';
import { writeGroups } from '../src/restore/write-groups.js';
import { GroupReads } from '../src/restore/group-reads.js';
import { BackupRing, RingFullError, type RingRecord } from '../src/restore/backup-ring.js';
import { FaultyFlash } from '../src/flash/faulty-flash.js';
import { MemoryFlash } from '../src/flash/memory-flash.js';
import { makeGeometry, PowerCutError, readBytes, sectorAt } from '../src/flash/flash.js';
import { openPartition } from '../src/flash/partition-layout.js';
import { Journal } from '../src/flash/journal.js';
import { PROFILE_NAMES } from '../src/flash/profiles.js';
import { parseHeader } from '../src/package-format.js';
import { image, pair } from './helpers/images.js';
import { randomBytes } from './helpers/lzma-drive.js';
import { crc32 } from '../src/crc32.js';

const K = 1024;
const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Buffer.compare(a, b) === 0;

describe('write groups', () => {
  it('one chunk per group when sectors divide the chunks; several where a sector holds more than one', () => {
    const spi = makeGeometry({ size: 256 * K, sectorSize: 4 * K });
    expect(writeGroups(spi, 64 * K, 200 * K).map((g) => [g.firstChunk, g.lastChunk, g.firstSector, g.lastSector])).toEqual([
      [0, 0, 0, 15],
      [1, 1, 16, 31],
      [2, 2, 32, 47],
      [3, 3, 48, 49],
    ]);
    const f4 = makeGeometry({ size: 512 * K, sectors: [{ count: 4, size: 16 * K }, { count: 1, size: 64 * K }, { count: 3, size: 128 * K }] });
    // A 64 KiB split: chunk 0 over four 16 KiB sectors, chunk 1 in the 64 KiB sector, then two chunks per 128 KiB sector.
    expect(writeGroups(f4, 64 * K, 400 * K).map((g) => [g.firstChunk, g.lastChunk, g.start, g.end])).toEqual([
      [0, 0, 0, 64 * K],
      [1, 1, 64 * K, 128 * K],
      [2, 3, 128 * K, 256 * K],
      [4, 5, 256 * K, 384 * K],
      [6, 6, 384 * K, 512 * K],
    ]);
    // 12 KiB chunks over 16 KiB sectors straddle: groups of four chunks and three sectors.
    const g16 = makeGeometry({ size: 96 * K, sectorSize: 16 * K });
    expect(writeGroups(g16, 12 * K, 90 * K).map((g) => [g.firstChunk, g.lastChunk, g.start, g.end])).toEqual([
      [0, 3, 0, 48 * K],
      [4, 7, 48 * K, 96 * K],
    ]);
  });
});

describe('which old bytes a group saves', () => {
  const slot = makeGeometry({ size: 16 * K, sectorSize: 1 * K });
  const grp = writeGroups(slot, 4 * K, 16 * K)[1]; // chunk 1, sectors 4..7

  it('code pushed forward by less than a sector: sectors go down, each saves only the old bytes it reads itself', () => {
    const r = new GroupReads(slot, grp);
    const d = 300;
    // NEW[x] = OLD[x - d] over the chunk.
    r.ownRead(4 * K - d, 4 * K, 4 * K);
    expect(r.order()).toEqual([7, 6, 5, 4]);
    const runs = r.saveRuns(() => true);
    const saved = runs.reduce((n, x) => n + x.length, 0);
    // Each sector's own old bytes it still reads: 1 KiB - 300 bytes rounded to save blocks, four times.
    expect(saved).toBeGreaterThanOrEqual(4 * (K - d));
    expect(saved).toBeLessThan(4 * (K - d) + 4 * 40);
    expect(runs.every((x) => x.keepUntil === 1)).toBe(true);
  });

  it('reads of other chunks are kept until those chunks are done; unchanged sectors save nothing', () => {
    const r = new GroupReads(slot, grp);
    r.ownRead(4 * K, 4 * K, 4 * K); // NEW = OLD here: every sector reads itself
    r.otherReader(2).read(7 * K + 512, 256); // the next chunk's look-back into sector 7
    const runs = r.saveRuns((s) => s === 7);
    expect(runs).toEqual([
      { offset: 7 * K, length: 512, keepUntil: 1 },
      { offset: 7 * K + 512, length: 256, keepUntil: 2 },
      { offset: 7 * K + 768, length: 256, keepUntil: 1 },
    ]);
  });
});

describe('the backup ring', () => {
  const geometry = { size: 8 * 512, sectorSize: 512, programUnit: 8 };
  const live = () => true;

  it('finds saved bytes again after a reboot, ignores another update, and never erases a live sector for room', () => {
    const flash = new MemoryFlash(geometry, { onOverwrite: 'program-once', contents: new Uint8Array(geometry.size).fill(0x5a) });
    const ring = new BackupRing(flash, 7);
    expect(ring.hasRecords()).toBe(false);
    const data = image(1500, 3);
    ring.save(4096, data, 3, live);
    ring.saveMark(0, [1, 2, 3], 3, live);
    const again = new BackupRing(flash, 7);
    expect(again.recordCount()).toBeGreaterThanOrEqual(3); // 1500 bytes over 512-byte sectors
    expect(again.uncovered(4096, 1500)).toEqual([]);
    expect(again.uncovered(4000, 200)).toEqual([{ offset: 4000, length: 96 }]);
    const back = new Uint8Array(1500);
    for (let at = 4096; at < 4096 + 1500; ) {
      const rec = again.find(at)!;
      const n = Math.min(4096 + 1500, rec.slotOffset + rec.length) - at;
      again.read(rec, at, back, at - 4096, n);
      at += n;
    }
    expect(same(back, data)).toBe(true);
    expect(again.markOf(0, 3)).toEqual([1, 2, 3]);
    expect(new BackupRing(flash, 8).hasRecords()).toBe(false);
    // Everything live: no room; nothing live: the sectors are reused.
    const full = new BackupRing(flash, 7);
    expect(() => {
      for (let i = 0; i < 20; i++) full.save(i * 512, randomBytes(400, i), 3, live);
    }).toThrow(RingFullError);
    const dead = new BackupRing(new MemoryFlash(geometry, { onOverwrite: 'program-once' }), 7);
    for (let i = 0; i < 20; i++) dead.save(i * 512, randomBytes(400, i), 3, (r: RingRecord) => r.slotOffset >= (i - 2) * 512);
    expect(dead.erases).toBeGreaterThan(8);
  });

  it('packs old bytes that compress, reads them back after a reboot, and takes no damaged packed record', () => {
    const big = { size: 16 * 4096, sectorSize: 4096, programUnit: 16 };
    const code = image(3 * 4096, 5); // code-like: packs
    const noise = randomBytes(3 * 4096, 5);
    const used = (data: Uint8Array) => {
      const f = new MemoryFlash(big, { onOverwrite: 'program-once' });
      const ring = new BackupRing(f, 3);
      ring.save(8192, data, 4, live);
      const again = new BackupRing(f, 3);
      const back = new Uint8Array(data.length);
      for (let at = 8192; at < 8192 + data.length; ) {
        const rec = again.find(at)!;
        const n = Math.min(8192 + data.length, rec.slotOffset + rec.length) - at;
        again.read(rec, at, back, at - 8192, n);
        at += n;
      }
      expect(same(back, data)).toBe(true);
      let end = 0;
      const raw = readBytes(f, 0, big.size);
      for (let i = 0; i < raw.length; i++) if (raw[i] !== 0xff) end = i + 1;
      return { f, bytes: end - 3 * 4096 }; // from the ring's first sector (update id mod sectors)
    };
    const packed = used(code);
    const plain = used(noise);
    expect(plain.bytes).toBeGreaterThan(3 * 4096);
    expect(packed.bytes).toBeLessThan(0.8 * 3 * 4096);
    // Damage one byte of the first packed record's stream: its CRC fails, so the ring no longer holds it.
    const at = 3 * 4096 + 32 + 4 + 10; // the ring starts at sector (update id mod sectors)
    const bytes = readBytes(packed.f, 0, big.size);
    bytes[at] ^= 0x10;
    const damaged = new BackupRing(new MemoryFlash(big, { contents: bytes }), 3);
    expect(damaged.uncovered(8192, 4096)).not.toEqual([]);
  });

  it('refuses a packed record whose count of held bytes is out of bounds, even with good CRCs', () => {
    const big = { size: 4 * 4096, sectorSize: 4096, programUnit: 8 };
    const f = new MemoryFlash(big, { onOverwrite: 'program-once' });
    new BackupRing(f, 3).save(0, image(4096, 2), 4, live);
    const good = readBytes(f, 0, big.size);
    expect(new BackupRing(new MemoryFlash(big, { contents: good }), 3).uncovered(0, 4096)).toEqual([]);
    for (const count of [0, 5000, 10]) {
      const bytes = good.slice();
      const h = 3 * 4096; // the ring starts at sector (update id mod sectors)
      const dv = new DataView(bytes.buffer, h);
      expect(dv.getUint32(0, true)).toBe(0x5a41544f); // 'OTAZ'
      const stored = dv.getUint32(16, true);
      dv.setUint32(32, count, true); // the held count, the first word of the data
      dv.setUint32(20, crc32(bytes.subarray(h + 32, h + 32 + stored)), true);
      dv.setUint32(28, crc32(bytes.subarray(h, h + 28)), true);
      expect(new BackupRing(new MemoryFlash(big, { contents: bytes }), 3).uncovered(0, 4096)).toEqual([{ offset: 0, length: 4096 }]);
    }
  });

  it('a record cut while written is not taken, and its sector is not written again before an erase', () => {
    for (let k = 0; k < 6; k++) {
      const mem = new MemoryFlash(geometry, { onOverwrite: 'program-once' });
      const f = new FaultyFlash(mem, { cutAt: k, tear: 'random', seed: k });
      const ring = new BackupRing(f, 1);
      try {
        ring.save(0, image(300, 1), 0, live);
        ring.save(512, image(300, 2), 0, live);
      } catch (e) {
        expect(e).toBeInstanceOf(PowerCutError);
      }
      f.reboot();
      const again = new BackupRing(f, 1);
      // Whatever it holds reads back exactly; then more records go in without a program over a written unit.
      again.save(2048, image(600, 4), 0, live);
      expect(again.uncovered(2048, 600)).toEqual([]);
    }
  });
});

describe('every profile: in place, A/B and OTA_RAW under power cuts', () => {
  for (const profile of PROFILE_NAMES) {
    for (const mode of ['inplace', 'ab'] as const) {
      it(`${profile} ${mode}: every cut recovers (torn units included, double cuts)`, async () => {
        const { old, neu } = pair(30_000);
        const { package: pkg } = await generatePackage(old, neu, { mode, splitSize: 4096, dictSize: 4096 });
        const r = runPowercut(old, neu, pkg, { profile, tear: 'random', seed: 11, doubleCutEvery: 2 });
        expect(r.failures).toEqual([]);
        expect(r.cuts).toBe(r.operations);
        expect(r.flash).toBe(profile);
      });
    }
    it(`${profile} OTA_RAW: a sample of cuts recovers`, () => {
      const { old, neu } = pair(20_000);
      const r = runPowercut(old, neu, packRaw(neu, { splitSize: 4096 }).package, { profile, tear: 'bits', sample: 40, seed: 5 });
      expect(r.failures).toEqual([]);
    });
  }

  it('a 64 KiB-split package restores in place on stm32f4 (two chunks per 128 KiB sector), every sampled cut recovers', async () => {
    const old = image(300 * K, 31);
    const neu = old.slice();
    neu.set(image(700, 32), 70 * K); // a change in the 64 KiB sector
    neu.set(image(900, 33), 200 * K); // and in a 128 KiB sector holding chunks 2 and 3
    for (let i = 140 * K; i < 150 * K; i += 61) neu[i] ^= 0x40;
    const { package: pkg } = await generatePackage(old, neu, { mode: 'inplace', splitSize: 64 * K, dictSize: 16 * K });
    const dev = prepareDevice(old, pkg, { profile: 'stm32f4' });
    expect(inPlaceGroups(parseHeader(pkg), openPartition(dev.flash, dev.layout, 'appA').geometry).some((g) => g.lastChunk > g.firstChunk)).toBe(true);
    const r = runPowercut(old, neu, pkg, { profile: 'stm32f4', tear: 'bits', sample: 60, seed: 2 });
    expect(r.failures).toEqual([]);
    // The 16 KiB sectors of chunk 0 equal NEW already: untouched.
    expect(r.wear.unchangedSectors).toBeGreaterThanOrEqual(4);
    expect(r.wear.unchangedSectorErases).toBe(0);
  });

  it('12 KiB chunks over 16 KiB sectors (sectors straddling chunk boundaries), erased value 0x00, program-once: every cut recovers', async () => {
    const { old, neu } = pair(60_000);
    const { package: pkg } = await generatePackage(old, neu, { mode: 'inplace', splitSize: 12 * K, dictSize: 4096 });
    const r = runPowercut(old, neu, pkg, { sectorSize: 16 * K, programUnit: 16, erasedValue: 0, overwrite: 'program-once', tear: 'prefix', seed: 4, doubleCutEvery: 2 });
    expect(r.failures).toEqual([]);
    expect(r.cuts).toBe(r.operations);
    expect(r.geometry).toEqual({ sectors: expect.stringContaining('16K'), programUnit: 16, erasedValue: 0, overwrite: 'program-once' });
  });
});

describe('fewer erases', () => {
  it('sectors whose bytes already equal NEW are neither erased nor written, in place and A/B', async () => {
    const old = image(64 * K, 41);
    const neu = old.slice();
    neu.set(image(300, 42), 5 * K); // changes in sectors 1 and 9 only
    neu.set(image(300, 43), 37 * K);
    for (const mode of ['inplace', 'ab'] as const) {
      const { package: pkg } = await generatePackage(old, neu, { mode, splitSize: 16 * K, dictSize: 4096 });
      const r = runPowercut(old, neu, pkg, { profile: 'nrf52', sample: 0 });
      if (mode === 'inplace') {
        expect(r.wear.unchangedSectors).toBe(14);
        expect(r.wear.unchangedSectorErases).toBe(0);
      }
      const dev = prepareDevice(old, pkg, { profile: 'nrf52' });
      const slot = mode === 'inplace' ? dev.layout.appA : dev.layout.appB!;
      const first = sectorAt(dev.layout.flash, slot.offset);
      const slotErases = Object.entries(r.wear.erasesBySector).filter(([s]) => +s >= first && +s < first + 16);
      // A/B: the empty slot B takes every sector once; in place only the two changed ones are rewritten.
      expect(slotErases.map(([s]) => +s - first)).toEqual(mode === 'inplace' ? [1, 9] : Array.from({ length: 16 }, (_, i) => i));
      expect(slotErases.every(([, n]) => n === 1)).toBe(true);
    }
  });

  it('the ring spreads the saved bytes: no ring sector takes more than about saved bytes / ring size erases', async () => {
    const { old, neu } = pair(200 * K);
    const { package: pkg } = await generatePackage(old, neu, { mode: 'inplace', splitSize: 16 * K, dictSize: 4096 });
    const r = runPowercut(old, neu, pkg, { profile: 'spi-nor-4k', sample: 0 });
    const dev = prepareDevice(old, pkg, { profile: 'spi-nor-4k' });
    const ring = dev.layout.backup;
    const first = sectorAt(dev.layout.flash, ring.offset);
    const ringErases = Object.entries(r.wear.erasesBySector).filter(([s]) => +s >= first && +s < first + ring.size / 4096);
    const total = ringErases.reduce((n, [, e]) => n + e, 0);
    expect(total).toBeGreaterThan(ring.size / 4096); // it went round more than once
    expect(Math.max(...ringErases.map(([, e]) => e))).toBeLessThanOrEqual(Math.ceil(total / (ring.size / 4096)) + 1);
  });
});

describe('refused before the first erase', () => {
  it('a backup ring too small for the package on this flash names the geometry and changes nothing', async () => {
    const { old, neu } = pair(40_000);
    const { package: pkg } = await generatePackage(old, neu, { mode: 'inplace', splitSize: 8 * K, dictSize: 4096 });
    const dev = prepareDevice(old, pkg, { profile: 'stm32l4', backupSize: 4 * 2048 });
    const faulty = new FaultyFlash(dev.flash);
    const before = dev.flash.snapshot();
    const out = boot({ flash: faulty, layout: dev.layout });
    expect(out).toMatchObject({ kind: 'old', slot: 'A', reason: 'layout' });
    expect((out as { detail: string }).detail).toMatch(/backup ring \(4 sectors.*too small.*sector map \d+x2K, 8-byte program unit/);
    const params = sectorAt(dev.layout.flash, dev.layout.params.offset);
    const destructive = [...faulty.erases.entries()].filter(([s, n]) => n > 0 && (s < params || s >= params + 4));
    expect(destructive).toEqual([]);
    expect(same(dev.flash.raw.subarray(0, dev.layout.params.offset), before.subarray(0, dev.layout.params.offset))).toBe(true);
  });
});

describe('a journal that lost its records', () => {
  it('in place, wiped at any point of the restore: the next boot resumes from the flash and the ring', async () => {
    const { old, neu } = pair(30_000);
    const { package: pkg } = await generatePackage(old, neu, { mode: 'inplace', splitSize: 4096, dictSize: 4096 });
    const dev = prepareDevice(old, pkg, { profile: 'stm32l4' });
    const clean = new FaultyFlash(new MemoryFlash(dev.flash.geometry, { contents: dev.flash.snapshot(), onOverwrite: 'program-once' }));
    expect(boot({ flash: clean, layout: dev.layout }).kind).toBe('trial');
    let resumed = 0;
    for (let k = 1; k < clean.ops; k += 3) {
      const mem = new MemoryFlash(dev.flash.geometry, { contents: dev.flash.snapshot(), onOverwrite: 'program-once' });
      const f = new FaultyFlash(mem, { cutAt: k, tear: 'none' });
      expect(() => boot({ flash: f, layout: dev.layout })).toThrow(PowerCutError);
      f.reboot();
      new Journal(openPartition(f, dev.layout, 'params')).format();
      const out = boot({ flash: f, layout: dev.layout });
      const slot = readBytes(openPartition(f, dev.layout, 'appA'), 0, neu.length);
      if (out.kind === 'trial') {
        expect(same(slot, neu)).toBe(true);
        resumed++;
      } else {
        // Refused as if nothing had started: the slot is still exactly OLD.
        expect(out).toMatchObject({ kind: 'old', reason: 'oldImage' });
        expect(same(readBytes(openPartition(f, dev.layout, 'appA'), 0, old.length), old)).toBe(true);
      }
    }
    expect(resumed).toBeGreaterThan(10);
  });
});
