// The in-place planner's RAM on untrusted packages: bounded by a figure of the header and the slot
// (planRamBytes, counted in restoreRamBytes), a package over MAX_PLAN_BYTES refused before the first
// erase, and a package crafted to read every sector of its group from every other planned within it.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { assemblePackage, compressRaw, generatePackage } from '@otadiff/diff-gen';
import { boot, restoreRamBytes } from '../src/restore/boot-restore.js';
import { prepareDevice, runPowercut } from '../src/restore/powercut.js';
import { planInPlace } from '../src/restore/inplace-restore.js';
import { MAX_PLAN_BYTES, planRamBytes } from '../src/restore/plan-ram.js';
import { GroupReads, PAIR_BUDGET, SAVE_BLOCK } from '../src/restore/group-reads.js';
import { writeGroups } from '../src/restore/write-groups.js';
import { ChunkReader } from '../src/restore/chunk-reader.js';
import { RING_PACK_RAM_BYTES } from '../src/restore/backup-ring.js';
import { FaultyFlash } from '../src/flash/faulty-flash.js';
import { makeGeometry, readBytes, sectorAt } from '../src/flash/flash.js';
import { openPartition } from '../src/flash/partition-layout.js';
import { readHandover } from '../src/flash/handover.js';
import { crc32 } from '../src/crc32.js';
import { parseHeader } from '../src/package-format.js';
import { image, pair } from './helpers/images.js';

const K = 1024;
const SECTOR = 4 * K;
const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Buffer.compare(a, b) === 0;
const sha = (b: Uint8Array) => new Uint8Array(createHash('sha256').update(b).digest());

/** LEB128, and zigzag for the signed seek (docs/FORMAT.md, "Command stream"). */
function varint(out: number[], v: number): void {
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

/**
 * A one-chunk in-place package whose NEW is OLD cut into `piece`-byte pieces and dealt out: piece j of
 * output sector y is piece y of source sector (y + j) mod n. So every output sector reads from
 * `SECTOR / piece` source sectors, and with as many sectors as pieces, from every sector of the group:
 * read maps of n × n sectors for the planner to keep.
 */
async function dealtPackage(size: number, piece: number): Promise<{ old: Uint8Array; neu: Uint8Array; pkg: Uint8Array }> {
  const n = size / SECTOR;
  const perSector = SECTOR / piece;
  const old = image(size, 7);
  const neu = new Uint8Array(size);
  const stream: number[] = [];
  let pos = 0;
  for (let y = 0; y < n; y++) {
    for (let j = 0; j < perSector; j++) {
      const src = ((y + j) % n) * SECTOR + (y % perSector) * piece;
      neu.set(old.subarray(src, src + piece), y * SECTOR + j * piece);
      const seek = src - pos;
      varint(stream, ((seek << 1) ^ (seek >> 31)) >>> 0);
      varint(stream, piece); // copy_len
      varint(stream, piece); // one unchanged run: the copy is complete
      varint(stream, 0); // extra_len
      pos = src + piece;
    }
  }
  const raw = Uint8Array.from(stream);
  const lzma = { lc: 3, lp: 0, pb: 2, dictSize: 64 * K };
  const record = await compressRaw(raw, lzma);
  const splitSize = Math.max(size, 4096);
  const pkg = assemblePackage(
    {
      mode: 'inplace',
      splitSize,
      oldSize: size,
      newSize: size,
      oldSha256: sha(old),
      newSha256: sha(neu),
      lzma,
      signatureType: 0,
      signatureLength: 0,
      payloadSha256: sha(record),
      chunks: [{ recordOffset: 0, recordLength: record.length, rawLength: raw.length, crc32: crc32(neu) }],
      firmwareVersion: 'dealt',
      securityCounter: 0,
      allowDowngrade: false,
    },
    [record],
  );
  return { old, neu, pkg };
}

describe('the in-place planner on a hostile package', () => {
  it('a package whose planning needs more than MAX_PLAN_BYTES is refused before the first erase, naming the figure and the limit', async () => {
    // 2.25 MiB in one chunk over 576 sectors of 4 KiB, each read from 512 of them: read maps of
    // 576 × 512 × 512 bytes (144 MiB) in the planner without its bound.
    const { old, pkg } = await dealtPackage(576 * SECTOR, 8);
    const h = parseHeader(pkg);
    const dev = prepareDevice(old, pkg, { sectorSize: SECTOR });
    const slot = openPartition(dev.flash, dev.layout, 'appA').geometry;
    expect(planRamBytes(h, slot)).toBeGreaterThan(MAX_PLAN_BYTES);
    const faulty = new FaultyFlash(dev.flash);
    const before = dev.flash.snapshot();
    const out = boot({ flash: faulty, layout: dev.layout });
    expect(out).toMatchObject({ kind: 'old', slot: 'A', reason: 'layout' });
    const detail = (out as { detail: string }).detail;
    expect(detail).toContain(`needs ${planRamBytes(h, slot)} bytes of RAM`);
    expect(detail).toContain(`limit of ${MAX_PLAN_BYTES}`);
    expect(detail).toMatch(/sector map \d+x4K, 1-byte program unit/);
    // Only the journal (in params, past the two hand-over sectors) was written.
    const params = sectorAt(dev.layout.flash, dev.layout.params.offset);
    expect([...faulty.erases.entries()].filter(([s, n]) => n > 0 && (s < params + 2 || s >= params + 4))).toEqual([]);
    expect(same(dev.flash.raw.subarray(0, dev.layout.params.offset), before.subarray(0, dev.layout.params.offset))).toBe(true);
  });

  it('a package under the limit whose every output sector reads every sector is planned within planRamBytes and restores under power cuts', async () => {
    // 1 MiB in one chunk over 256 sectors, each read from all 256: 32 MiB of read maps, and a greedy
    // order over them of minutes, without PAIR_BUDGET.
    const { old, neu, pkg } = await dealtPackage(256 * SECTOR, 16);
    const h = parseHeader(pkg);
    const dev = prepareDevice(old, pkg, { sectorSize: SECTOR });
    const slot = openPartition(dev.flash, dev.layout, 'appA').geometry;
    const handover = readHandover(openPartition(dev.flash, dev.layout, 'params'))!;
    const plan = planInPlace(h, new ChunkReader(h, openPartition(dev.flash, dev.layout, 'ota'), handover.packageOffset), slot, openPartition(dev.flash, dev.layout, 'backup').geometry, 'test');
    expect(planRamBytes(h, slot)).toBeLessThanOrEqual(MAX_PLAN_BYTES);
    expect(plan.readBytes).toBeLessThanOrEqual(planRamBytes(h, slot));
    expect(plan.readBytes).toBeLessThan(PAIR_BUDGET + 16 * (h.newSize / SAVE_BLOCK));
    const r = runPowercut(old, neu, pkg, { sectorSize: SECTOR, sample: 6, seed: 3, tear: 'random' });
    expect(r.failures).toEqual([]);
    expect(r.ramBytes).toBe(restoreRamBytes(h, slot));
  }, 60_000);
});

describe('planner RAM in restoreRamBytes', () => {
  it('for a normal package, what the planner holds is within planRamBytes, which restoreRamBytes adds in place', async () => {
    const { old, neu } = pair(200 * K);
    const { package: pkg } = await generatePackage(old, neu, { mode: 'inplace', splitSize: 64 * K, dictSize: 16 * K });
    const h = parseHeader(pkg);
    for (const profile of ['spi-nor-4k', 'stm32f4', 'stm32l4']) {
      const dev = prepareDevice(old, pkg, { profile });
      const slot = openPartition(dev.flash, dev.layout, 'appA').geometry;
      const handover = readHandover(openPartition(dev.flash, dev.layout, 'params'))!;
      const plan = planInPlace(h, new ChunkReader(h, openPartition(dev.flash, dev.layout, 'ota'), handover.packageOffset), slot, openPartition(dev.flash, dev.layout, 'backup').geometry, profile);
      expect(plan.readBytes, profile).toBeGreaterThan(0);
      expect(plan.readBytes, profile).toBeLessThanOrEqual(planRamBytes(h, slot));
      // The buffers are those of the same package restored into the other slot, plus the ring's packing.
      expect(restoreRamBytes(h, slot) - restoreRamBytes({ ...h, mode: 'ab' }) - RING_PACK_RAM_BYTES, profile).toBe(planRamBytes(h, slot));
      expect(boot({ flash: dev.flash, layout: dev.layout }).kind).toBe('trial');
      expect(same(readBytes(openPartition(dev.flash, dev.layout, 'appA'), 0, neu.length), neu)).toBe(true);
    }
    // Without a slot: 4 KiB sectors. The bench's 64 KiB split on them stays far below the limit.
    expect(restoreRamBytes(h) - restoreRamBytes({ ...h, mode: 'ab' }) - RING_PACK_RAM_BYTES).toBe(planRamBytes(h, makeGeometry({ size: 204 * K, sectorSize: SECTOR })));
    expect(planRamBytes({ splitSize: 64 * K, newSize: 4096 * K }, makeGeometry({ size: 4096 * K, sectorSize: SECTOR }))).toBeLessThan(300 * K);
    expect(planRamBytes({ splitSize: 16384 * K, newSize: 16384 * K }, makeGeometry({ size: 16384 * K, sectorSize: SECTOR }))).toBeGreaterThan(MAX_PLAN_BYTES);
  }, 30_000);
});

describe('a group past PAIR_BUDGET', () => {
  it('keeps each block\'s lowest and highest reader, goes in plain order, and saves every old byte a later step reads', () => {
    // 64 sectors of 2 KiB, every output sector reading 16 bytes of every sector: 1 MiB of maps.
    const slot = makeGeometry({ size: 128 * K, sectorSize: 2 * K });
    const grp = writeGroups(slot, 128 * K, 128 * K)[0];
    const n = 64;
    const r = new GroupReads(slot, grp);
    const reads: [number, number][] = []; // source block, output sector
    for (let y = 0; y < n; y++)
      for (let z = 0; z < n; z++) {
        const src = z * 2 * K + ((y * 16) % (2 * K));
        r.ownRead(src, 16, y * 2 * K + z * 32);
        reads.push([src / SAVE_BLOCK, y], [src / SAVE_BLOCK + 1, y]);
      }
    expect(r.bytes).toBeLessThan(PAIR_BUDGET + 8 * grp.end / SAVE_BLOCK);
    const order = r.order();
    const ascending = Array.from({ length: n }, (_, k) => k);
    expect([ascending, [...ascending].reverse()]).toContainEqual(order);
    // What must be saved: a block whose sector is written before one of its readers, or with it.
    const step = new Map(order.map((s, k) => [s, k]));
    const needed = new Set<number>();
    for (const [b, y] of reads) if (step.get(y)! >= step.get(Math.floor((b * SAVE_BLOCK) / (2 * K)))!) needed.add(b);
    const saved = new Set<number>();
    for (const run of r.saveRuns(() => true)) for (let at = run.offset; at < run.offset + run.length; at += SAVE_BLOCK) saved.add(at / SAVE_BLOCK);
    for (const b of needed) expect(saved.has(b), `block ${b}`).toBe(true);
    // Merged runs only bridge gaps of a few blocks: nothing much beyond what is needed.
    expect(saved.size).toBeLessThan(needed.size * 1.5 + 64);
  });
});
