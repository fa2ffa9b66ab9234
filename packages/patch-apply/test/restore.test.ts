import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { sha256 } from '@noble/hashes/sha2.js';
import { generatePackage, generateKeyPair, loadPrivateKey, packRaw, trustedKeyOf } from '@otadiff/diff-gen';
import { parseHeader, recordsOffset } from '../src/package-format.js';
import { confirmBoot, stageUpdate } from '../src/restore/stage.js';
import { boot } from '../src/restore/boot-restore.js';
import { prepareDevice, runPowercut } from '../src/restore/powercut.js';
import { FaultyFlash } from '../src/flash/faulty-flash.js';
import { MemoryFlash } from '../src/flash/memory-flash.js';
import { FlashError, PowerCutError, eraseRange, readBytes, uniformSectorSize, type Flash } from '../src/flash/flash.js';
import { openPartition, type PartitionLayout } from '../src/flash/partition-layout.js';
import { readHandover, writeHandover } from '../src/flash/handover.js';
import { Journal, deriveUpdateId } from '../src/flash/journal.js';
import { BackupRing } from '../src/restore/backup-ring.js';
import { image, pair } from './helpers/images.js';
import { microbitImage } from '../../../bench/src/corpus.js';
import { thumbPair } from './helpers/thumb-images.js';
import { chunkTransformed } from '../src/transform/transform-section.js';

const CORPUS = new URL('../../../corpus/esp8266-at/', import.meta.url);
const corpus = (v: string) => new Uint8Array(readFileSync(new URL(`at-v${v}.bin`, CORPUS)));


const slotView = (flash: MemoryFlash | FaultyFlash, layout: PartitionLayout, slot: 'A' | 'B') => openPartition(flash, layout, slot === 'A' ? 'appA' : 'appB');
const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Buffer.compare(a, b) === 0;

describe('boot-side restore under power cuts', () => {
  for (const mode of ['inplace', 'ab'] as const) {
    for (const tear of ['random', 'prefix', 'bits'] as const) {
      it(`${mode}: every flash operation cut (tear ${tear}, double cuts), every boot is OLD intact or NEW complete`, async () => {
        const { old, neu } = pair(14000);
        const { package: pkg } = await generatePackage(old, neu, { mode, splitSize: 4096 });
        const r = runPowercut(old, neu, pkg, { sectorSize: 1024, tear, seed: 5, doubleCutEvery: 2 });
        expect(r.failures).toEqual([]);
        expect(r.cuts).toBe(r.operations);
        expect(r.operations).toBeGreaterThan(20);
        expect(r.doubleCuts).toBeGreaterThan(5);
        expect(r.recovered).toBe(r.cuts);
      });
    }
  }

  for (const [mode, transform] of [['inplace', 'thumb2'], ['ab', 'thumb2'], ['inplace', 'xtensa']] as const) {
    it(`${mode}, ${transform}-transformed package (diff_version 3): every flash operation and read cut, double cuts, every boot is OLD intact or NEW complete`, async () => {
      const { old, neu, base } = thumbPair(170, 7);
      // Xtensa on the Thumb-like pair: its address words (and whatever the sweep takes for CALL0s), every chunk.
      const { package: pkg, header } = await generatePackage(old, neu, { mode, splitSize: 4096, transform, base, transformEveryChunk: transform === 'xtensa' });
      expect(header.transform?.kind).toBe(transform);
      expect(header.chunks.filter((_c, i) => chunkTransformed(header.transform, i)).length).toBeGreaterThan(1);
      for (const countReads of [false, true]) {
        const r = runPowercut(old, neu, pkg, { sectorSize: 1024, tear: 'random', seed: 6, doubleCutEvery: 2, countReads });
        expect(r.failures).toEqual([]);
        expect(r.cuts).toBe(r.operations);
        expect(r.operations).toBeGreaterThan(countReads ? 60 : 20);
        expect(r.recovered).toBe(r.cuts);
      }
    });
  }

  it('inplace with references to restored NEW bytes (referenceNew): every cut recovers', async () => {
    const { old, neu } = pair(14000);
    // NEW repeats its own early bytes late, so later chunks copy from chunks already written.
    const grown = new Uint8Array(neu.length + 6000);
    grown.set(neu);
    grown.set(neu.subarray(200, 6200), neu.length);
    const { package: pkg } = await generatePackage(old, grown, { mode: 'inplace', splitSize: 4096, referenceNew: true });
    const r = runPowercut(old, grown, pkg, { sectorSize: 1024, tear: 'random', seed: 9, doubleCutEvery: 2 });
    expect(r.failures).toEqual([]);
    expect(r.cuts).toBe(r.operations);
  });

  it('cuts during reads too (the decoder reading its sources, the hash checks): never taken for a bad package', async () => {
    const { old, neu } = pair(9000);
    for (const mode of ['inplace', 'ab'] as const) {
      const { package: pkg } = await generatePackage(old, neu, { mode, splitSize: 4096 });
      const r = runPowercut(old, neu, pkg, { sectorSize: 1024, countReads: true, seed: 4 });
      expect(r.failures).toEqual([]);
      expect(r.cuts).toBe(r.operations);
      expect(r.operations).toBeGreaterThan(100);
    }
  });

  it('a transient read error while decoding is not taken for a bad package: it propagates, and the next boot resumes', async () => {
    const { old, neu } = pair(14000);
    for (const mode of ['inplace', 'ab'] as const) {
      const { package: pkg } = await generatePackage(old, neu, { mode, splitSize: 4096 });
      const dev = prepareDevice(old, pkg, { sectorSize: 1024 });
      let reads = 0;
      let failAt = -1;
      const flaky: Flash = {
        geometry: dev.flash.geometry,
        read(offset, dst, dstOffset, length) {
          if (reads++ === failAt) throw new FlashError('read error (ECC)');
          dev.flash.read(offset, dst, dstOffset, length);
        },
        program: (offset, data) => dev.flash.program(offset, data),
        erase: (sector) => dev.flash.erase(sector),
      };
      // Fail a read well into the restore (past the checks, while chunks are being decoded).
      const probe = new FaultyFlash(new MemoryFlash(dev.flash.geometry, { contents: dev.flash.snapshot() }), { countReads: true });
      boot({ flash: probe, layout: dev.layout });
      failAt = Math.floor(probe.reads * 0.6);
      expect(() => boot({ flash: flaky, layout: dev.layout })).toThrow(/read error/);
      expect(boot({ flash: flaky, layout: dev.layout })).toMatchObject({ kind: 'trial', slot: dev.targetSlot });
      const slot = openPartition(dev.flash, dev.layout, dev.targetSlot === 'A' ? 'appA' : 'appB');
      expect(same(readBytes(slot, 0, neu.length), neu)).toBe(true);
    }
  });

  it('program units of 8 bytes and 4 KiB sectors', async () => {
    const { old, neu } = pair(20000);
    const { package: pkg } = await generatePackage(old, neu, { mode: 'inplace', splitSize: 8192 });
    const r = runPowercut(old, neu, pkg, { sectorSize: 4096, programUnit: 8, seed: 2 });
    expect(r.failures).toEqual([]);
  });

  for (const [a, b, mode] of [['3.0.4', '3.0.5', 'inplace'], ['3.0.2', '3.0.3', 'ab']] as const) {
    it(`ESP8266 ${a} -> ${b} (${mode}): a seeded sample of cuts`, async () => {
      const old = corpus(a);
      const neu = corpus(b);
      const { package: pkg } = await generatePackage(old, neu, { mode, splitSize: 65536 });
      const r = runPowercut(old, neu, pkg, { sectorSize: 4096, sample: 24, seed: 7 });
      expect(r.failures).toEqual([]);
      expect(r.cuts).toBe(24);
      // Wear: in place, a sector of NEW is erased once and the saved old bytes go round a ring of a third of the
      // slot; A/B erases each changed sector once.
      expect(r.wear.maxErasesPerSector).toBeLessThanOrEqual(mode === 'inplace' ? 4 : 1);
    });
  }

  for (const [variant, a, b, mode] of [['v1a', '7.0.6', '8.1.32', 'inplace'], ['v2b', '4.0.24', '7.0.6', 'ab'], ['v2a', '7.0.6', '8.1.32', 'inplace']] as const) {
    it(`micro:bit ${variant} ${a} -> ${b} (${mode}): a seeded sample of cuts`, async () => {
      const old = new Uint8Array(readFileSync(microbitImage(variant, a)));
      const neu = new Uint8Array(readFileSync(microbitImage(variant, b)));
      const { package: pkg } = await generatePackage(old, neu, { mode, splitSize: 65536 });
      const r = runPowercut(old, neu, pkg, { sectorSize: 4096, sample: 16, seed: 11 });
      expect(r.failures).toEqual([]);
      expect(r.cuts).toBe(16);
    });
  }
});

async function device(mode: 'inplace' | 'ab', tweak?: (old: Uint8Array, pkg: Uint8Array) => void) {
  const { old, neu } = pair(14000);
  const { package: pkg } = await generatePackage(old, neu, { mode, splitSize: 4096 });
  const dev = prepareDevice(old, pkg, { sectorSize: 1024, otaSize: 16384 });
  tweak?.(dev.flash.raw.subarray(dev.layout.appA.offset), dev.flash.raw.subarray(dev.layout.ota.offset));
  const faulty = new FaultyFlash(dev.flash, { cutAt: 'never' });
  return { old, neu, pkg, dev, faulty };
}

/** Erases outside the params partition (the journal's own sectors are bookkeeping, not destruction). */
function destructiveErases(f: FaultyFlash, layout: PartitionLayout): number {
  const ss = uniformSectorSize(layout.flash)!;
  let n = 0;
  f.erases.forEach((c, s) => {
    if (s * ss < layout.params.offset || s * ss >= layout.params.offset + layout.params.size) n += c;
  });
  return n;
}

describe('refusals before anything is destroyed', () => {
  for (const mode of ['inplace', 'ab'] as const) {
    it(`${mode}: a package that fails its hash boots the old image untouched`, async () => {
      const { old, dev, faulty } = await device(mode, (_o, pkg) => {
        pkg[300] ^= 0x01;
      });
      const out = boot({ flash: faulty, layout: dev.layout });
      expect(out).toMatchObject({ kind: 'old', slot: 'A', reason: 'packageHash' });
      expect(destructiveErases(faulty, dev.layout)).toBe(0);
      expect(same(readBytes(slotView(faulty, dev.layout, 'A'), 0, old.length), old)).toBe(true);
      // And it stays refused on the next boots.
      expect(boot({ flash: faulty, layout: dev.layout })).toMatchObject({ kind: 'old', reason: 'packageHash' });
    });

    it(`${mode}: a wrong old image is refused before any erase`, async () => {
      const { dev, faulty } = await device(mode, (old) => {
        old[5] ^= 0xff;
      });
      const before = readBytes(slotView(faulty, dev.layout, 'A'), 0, 14000);
      expect(boot({ flash: faulty, layout: dev.layout })).toMatchObject({ kind: 'old', slot: 'A', reason: 'oldImage' });
      expect(destructiveErases(faulty, dev.layout)).toBe(0);
      expect(same(readBytes(slotView(faulty, dev.layout, 'A'), 0, 14000), before)).toBe(true);
    });
  }

  it('no hand-over record, or a breakpoint one, boots slot A without touching anything', async () => {
    const { dev, faulty } = await device('ab');
    const params = openPartition(faulty, dev.layout, 'params');
    const h = readHandover(params)!;
    const { seq: _s, ...rest } = h;
    writeHandover(params, { ...rest, result: 'breakpoint' });
    const erasesBefore = faulty.totalErases;
    expect(boot({ flash: faulty, layout: dev.layout })).toEqual({ kind: 'normal', slot: 'A' });
    expect(faulty.totalErases).toBe(erasesBefore);
    const blank = new MemoryFlash(dev.flash.geometry);
    expect(boot({ flash: blank, layout: dev.layout })).toEqual({ kind: 'normal', slot: 'A' });
  });
});

describe('journal corruption and rollback', () => {
  it('a corrupted newest journal record falls back to the one before and the restore still completes', async () => {
    const { neu, dev } = await device('inplace');
    // Stop the restore part-way: cut at an op in the middle, then corrupt the newest journal record.
    const first = new FaultyFlash(dev.flash, { cutAt: 'never' });
    expect(boot({ flash: first, layout: dev.layout }).kind).toBe('trial');
    const total = first.ops;
    let corrupted = 0;
    for (let cutAt = 3; cutAt < total; cutAt++) {
      const { dev: d2 } = await device('inplace');
      const f = new FaultyFlash(d2.flash, { cutAt, tear: 'none' });
      expect(() => boot({ flash: f, layout: d2.layout })).toThrow(PowerCutError);
      f.reboot();
      const params = openPartition(f, d2.layout, 'params');
      const entries = new Journal(params).entries();
      if (entries.length < 2) continue; // nothing to fall back to yet
      const newest = entries[entries.length - 1];
      // Flip a bit of the newest record on the raw flash.
      const ss = uniformSectorSize(d2.layout.flash)!;
      const journalBase = d2.layout.params.offset + 2 * ss;
      const raw = d2.flash.raw;
      let hit = -1;
      for (let off = journalBase; off < journalBase + 2 * ss; off += 4) {
        const v = new DataView(raw.buffer, raw.byteOffset + off, 8);
        if (v.getUint32(0, true) === 0x4a41544f && v.getUint32(4, true) === newest.seq) hit = off;
      }
      if (hit < 0) continue; // the newest record is in the sector being recycled; covered by the journal tests
      raw[hit + 20] ^= 0x04;
      corrupted++;
      const after = new Journal(params).entries();
      expect(after[after.length - 1].seq).toBe(newest.seq - 1);
      const out = boot({ flash: f, layout: d2.layout });
      expect(out).toMatchObject({ kind: 'trial', slot: 'A' });
      expect(same(readBytes(slotView(f, d2.layout, 'A'), 0, neu.length), neu)).toBe(true);
    }
    expect(corrupted).toBeGreaterThan(total / 2);
  });

  it('ab: an image never confirmed is rolled back after 3 boots; a confirmed one stays', async () => {
    const { old, neu, dev, faulty } = await device('ab');
    const attempts = [1, 2, 3].map(() => boot({ flash: faulty, layout: dev.layout }));
    expect(attempts).toEqual([1, 2, 3].map((attempt) => ({ kind: 'trial', slot: 'B', attempt })));
    expect(same(readBytes(slotView(faulty, dev.layout, 'B'), 0, neu.length), neu)).toBe(true);
    const fourth = boot({ flash: faulty, layout: dev.layout });
    expect(fourth).toMatchObject({ kind: 'old', slot: 'A', reason: 'rolledBack' });
    expect(boot({ flash: faulty, layout: dev.layout })).toMatchObject({ kind: 'old', slot: 'A' });
    expect(same(readBytes(slotView(faulty, dev.layout, 'A'), 0, old.length), old)).toBe(true);

    const second = await device('ab');
    expect(boot({ flash: second.faulty, layout: second.dev.layout })).toMatchObject({ kind: 'trial', attempt: 1 });
    // The application confirms: the OTA service records the new slot as active and confirmed.
    const params = openPartition(second.faulty, second.dev.layout, 'params');
    const { seq: _s, ...h } = readHandover(params)!;
    writeHandover(params, { ...h, activeSlot: 'B', confirmed: true });
    for (let i = 0; i < 5; i++) expect(boot({ flash: second.faulty, layout: second.dev.layout })).toEqual({ kind: 'normal', slot: 'B' });
  });

  it('in place there is no old image to roll back to: the new image keeps booting', async () => {
    const { dev, faulty } = await device('inplace');
    for (let i = 1; i <= 5; i++) expect(boot({ flash: faulty, layout: dev.layout })).toEqual({ kind: 'trial', slot: 'A', attempt: i });
  });
});

describe('untrusted journal contents', () => {
  it('a valid journal record naming a chunk the package does not have is refused, not a crash', async () => {
    for (const mode of ['inplace', 'ab'] as const) {
      const { dev, faulty } = await device(mode);
      const params = openPartition(faulty, dev.layout, 'params');
      const h = readHandover(params)!;
      const journal = new Journal(params);
      const id = deriveUpdateId(h.packageSha256, h.seq);
      journal.reset(id);
      journal.append({ state: 'verified', chunk: 0, aux: 0, updateId: id });
      journal.append({ state: 'chunk-done', chunk: 999, aux: 0, updateId: id });
      const out = boot({ flash: faulty, layout: dev.layout });
      expect(out).toMatchObject(mode === 'ab' ? { kind: 'old', slot: 'A', reason: 'backup' } : { kind: 'halt', reason: 'backup' });
    }
  });
});

describe('in place: the backup ring and the resume probes', () => {
  it('a backup ring left by an earlier update (records of old bytes of this very slot) does not mislead the restore', async () => {
    const { old, neu } = pair(14000);
    const { package: pkg } = await generatePackage(old, neu, { mode: 'inplace', splitSize: 4096 });
    const dev = prepareDevice(old, pkg, { sectorSize: 1024, usedBackup: false });
    // Another update's records, over the slot offsets this one reads, holding bytes that are not OLD.
    const ring = new BackupRing(openPartition(dev.flash, dev.layout, 'backup'), 0x5eed);
    for (let at = 0; at < 12 * 1024; at += 1024) ring.save(at, neu.subarray(at + 100, at + 1124), 0, () => true);
    expect(boot({ flash: dev.flash, layout: dev.layout })).toMatchObject({ kind: 'trial', slot: 'A' });
    expect(same(readBytes(slotView(dev.flash, dev.layout, 'A'), 0, neu.length), neu)).toBe(true);
  });

  it('repeated chunk contents (padding, copied tables) do not fool the resume probes: every cut recovers', async () => {
    // NEW chunks: X, Y, old[2] (unchanged), Z, X. After chunk 2 is logged done, backup slot 0 still
    // holds X, which is also chunk 4: a resume must not take it for a saved chunk 4.
    const S = 4096;
    const old = image(5 * S, 21);
    const X = image(S, 22);
    const neu = new Uint8Array(5 * S);
    neu.set(X, 0);
    neu.set(image(S, 23), S);
    neu.set(old.subarray(2 * S, 3 * S), 2 * S);
    neu.set(image(S, 24), 3 * S);
    neu.set(X, 4 * S);
    const { package: pkg } = await generatePackage(old, neu, { mode: 'inplace', splitSize: S });
    for (const tear of ['none', 'random'] as const) {
      const r = runPowercut(old, neu, pkg, { sectorSize: 1024, tear, seed: 3, doubleCutEvery: 0 });
      expect(r.failures).toEqual([]);
      expect(r.cuts).toBe(r.operations);
    }
  });

  it('refuses (before touching anything) a backup ring too small for the package', async () => {
    const { old, neu } = pair(14000);
    const { package: pkg } = await generatePackage(old, neu, { mode: 'inplace', splitSize: 4096 });
    const dev = prepareDevice(old, pkg, { sectorSize: 1024 });
    const small = { ...dev.layout, backup: { ...dev.layout.backup, size: 4096 } };
    const before = dev.flash.snapshot();
    expect(boot({ flash: dev.flash, layout: small })).toMatchObject({ kind: 'old', slot: 'A', reason: 'layout' });
    expect(same(readBytes(slotView(dev.flash, dev.layout, 'A'), 0, old.length), before.subarray(0, old.length))).toBe(true);
  });
});

describe('OTA_RAW', () => {
  it('copies a full image into the other slot, resumable after every cut', async () => {
    const { old, neu } = pair(14000);
    const { package: pkg } = packRaw(neu, { splitSize: 4096 });
    const dev = prepareDevice(old, pkg, { sectorSize: 1024 });
    expect(readHandover(openPartition(dev.flash, dev.layout, 'params'))).toMatchObject({ firmwareType: 'raw', imageSize: neu.length, targetSlot: 'B' });
    const clean = new FaultyFlash(new MemoryFlash(dev.flash.geometry, { contents: dev.flash.snapshot() }));
    expect(boot({ flash: clean, layout: dev.layout })).toMatchObject({ kind: 'trial', slot: 'B' });
    for (let k = 0; k < clean.ops; k++) {
      const f = new FaultyFlash(new MemoryFlash(dev.flash.geometry, { contents: dev.flash.snapshot() }), { cutAt: k, seed: k });
      expect(() => boot({ flash: f, layout: dev.layout })).toThrow(PowerCutError);
      f.reboot();
      expect(boot({ flash: f, layout: dev.layout })).toMatchObject({ kind: 'trial', slot: 'B' });
      expect(same(readBytes(slotView(f, dev.layout, 'B'), 0, neu.length), neu)).toBe(true);
      expect(same(readBytes(slotView(f, dev.layout, 'A'), 0, old.length), old)).toBe(true);
    }
  });

  it('refuses a bare image (no otadiff header) before touching any slot', async () => {
    const { old, neu } = pair(9000);
    const { package: pkg } = packRaw(neu, { splitSize: 4096 });
    const dev = prepareDevice(old, pkg, { sectorSize: 1024 });
    // An attacker-controlled hand-over naming a bare image in the OTA partition.
    const ota = openPartition(dev.flash, dev.layout, 'ota');
    eraseRange(ota, 0, ota.geometry.size);
    ota.program(0, padTo(neu, ota.geometry.programUnit));
    const params = openPartition(dev.flash, dev.layout, 'params');
    const h = readHandover(params)!;
    const { seq: _s, ...rest } = h;
    writeHandover(params, { ...rest, packageLength: neu.length, packageSha256: sha256(neu) });
    const before = dev.flash.snapshot();
    expect(boot({ flash: dev.flash, layout: dev.layout })).toMatchObject({ kind: 'old', slot: 'A', reason: 'badPackage' });
    expect(same(readBytes(slotView(dev.flash, dev.layout, 'B'), 0, 4096), before.subarray(dev.layout.appB!.offset, dev.layout.appB!.offset + 4096))).toBe(true);
  });
});

const padTo = (b: Uint8Array, unit: number) => {
  const out = new Uint8Array(Math.ceil(b.length / unit) * unit).fill(0xff);
  out.set(b);
  return out;
};

describe('signed packages on the boot side', () => {
  const keys = {
    ed25519: loadPrivateKey(generateKeyPair('ed25519').privateKey),
    p256: loadPrivateKey(generateKeyPair('ecdsa-p256').privateKey),
    rsa: loadPrivateKey(generateKeyPair('rsa-2048').privateKey),
  };
  const { old, neu } = pair(14000);
  const partitions = (dev: ReturnType<typeof prepareDevice>) => {
    const f = dev.flash.raw;
    const { appA, appB } = dev.layout;
    return { a: f.slice(appA.offset, appA.offset + appA.size), b: appB === undefined ? null : f.slice(appB.offset, appB.offset + appB.size) };
  };

  for (const mode of ['inplace', 'ab'] as const) {
    it(`${mode}: restores a package signed by a trusted key of each algorithm`, async () => {
      for (const key of Object.values(keys)) {
        const { package: pkg } = await generatePackage(old, neu, { mode, splitSize: 4096, signingKey: key, securityCounter: 3 });
        const dev = prepareDevice(old, pkg, { sectorSize: 1024 });
        const out = boot({ flash: dev.flash, layout: dev.layout, trustedKeys: [trustedKeyOf(keys.p256), trustedKeyOf(key)] });
        expect(out).toMatchObject({ kind: 'trial', slot: dev.targetSlot });
        expect(same(readBytes(slotView(dev.flash, dev.layout, dev.targetSlot), 0, neu.length), neu)).toBe(true);
      }
    });

    it(`${mode}: an unsigned package, another key's signature, a forged signature or tampered records change nothing`, async () => {
      const trusted = [trustedKeyOf(keys.ed25519)];
      const unsigned = (await generatePackage(old, neu, { mode, splitSize: 4096 })).package;
      const otherKey = (await generatePackage(old, neu, { mode, splitSize: 4096, signingKey: keys.rsa })).package;
      const signed = (await generatePackage(old, neu, { mode, splitSize: 4096, signingKey: keys.ed25519 })).package;
      const h = parseHeader(signed);
      const forged = signed.slice();
      forged[h.headerLength + 5] ^= 1;
      // Records changed after signing: the header (and its signature) still verify, the payload hash does not.
      const tampered = signed.slice();
      tampered[recordsOffset(h) + 3] ^= 0x40;
      const cases: [string, Uint8Array, string][] = [
        ['unsigned', unsigned, 'signature'],
        ['other key', otherKey, 'signature'],
        ['forged', forged, 'signature'],
        ['tampered records', tampered, 'badPackage'],
      ];
      for (const [name, pkg, reason] of cases) {
        // stageUpdate hashes what it writes, so the hand-over matches the hostile package: only the package checks stand.
        const dev = prepareDevice(old, pkg, { sectorSize: 1024 });
        const before = partitions(dev);
        const out = boot({ flash: dev.flash, layout: dev.layout, trustedKeys: trusted });
        expect({ name, out }).toMatchObject({ name, out: { kind: 'old', slot: 'A', reason } });
        expect({ name, same: partitions(dev) }).toEqual({ name, same: before });
      }
    });
  }

  it('anti-rollback: a counter below the recorded one is refused unless the signed header allows it; confirming raises the record', async () => {
    const trusted = [trustedKeyOf(keys.ed25519)];
    const v5 = (await generatePackage(old, neu, { mode: 'ab', splitSize: 4096, signingKey: keys.ed25519, securityCounter: 5, firmwareVersion: '5.0' })).package;
    const dev = prepareDevice(old, v5, { sectorSize: 1024 });
    expect(boot({ flash: dev.flash, layout: dev.layout, trustedKeys: trusted })).toMatchObject({ kind: 'trial', slot: 'B' });
    const params = openPartition(dev.flash, dev.layout, 'params');
    expect(readHandover(params)!.securityCounter).toBe(0);
    confirmBoot(dev.flash, dev.layout, 'B');
    expect(readHandover(params)!.securityCounter).toBe(5);

    // Back from NEW (slot B) to OLD with an older, validly signed package: refused.
    for (const [counter, allowDowngrade, expected] of [
      [4, false, { kind: 'old', slot: 'B', reason: 'securityCounter' }],
      [4, true, { kind: 'trial', slot: 'A' }],
      [5, false, { kind: 'trial', slot: 'A' }],
    ] as const) {
      const back = (await generatePackage(neu, old, { mode: 'ab', splitSize: 4096, signingKey: keys.ed25519, securityCounter: counter, allowDowngrade })).package;
      const f = new MemoryFlash(dev.flash.geometry, { contents: dev.flash.snapshot() });
      stageUpdate(f, dev.layout, back);
      expect({ counter, allowDowngrade, out: boot({ flash: f, layout: dev.layout, trustedKeys: trusted }) }).toMatchObject({ counter, allowDowngrade, out: expected });
      // The check does not depend on configured keys: the counter is in the hand-over.
      if (!allowDowngrade && counter < 5) {
        const g = new MemoryFlash(dev.flash.geometry, { contents: dev.flash.snapshot() });
        stageUpdate(g, dev.layout, back);
        expect(boot({ flash: g, layout: dev.layout })).toMatchObject(expected);
      }
    }
  });
});

describe('in place with the transform: the old bytes a predicted source depends on', () => {
  // A transformed chunk's copy of a predicted byte depends on more old bytes than it copies (its
  // instruction, its word, for Xtensa the sweep from its block's start): the restore must save those too,
  // or a chunk decoded again after its neighbours were rewritten would not match its CRC.
  for (const [what, load] of [
    ['ESP8266 2.2.0 -> 2.2.1 (Xtensa)', () => [corpus('2.2.0'), corpus('2.2.1')]],
    ['ESP8266 3.0.4 -> 3.0.5 (Xtensa)', () => [corpus('3.0.4'), corpus('3.0.5')]],
    ['micro:bit v2a 7.0.6 -> 8.1.32 (Thumb-2)', () => [readFileSync(microbitImage('v2a', '7.0.6')), readFileSync(microbitImage('v2a', '8.1.32'))]],
  ] as const) {
    it(`${what}: a clean restore on spi-nor-4k and stm32f4 boots NEW`, async () => {
      const [old, neu] = load().map((b) => new Uint8Array(b));
      const { package: pkg } = await generatePackage(old, neu, { mode: 'inplace', splitSize: 65536 });
      expect(parseHeader(pkg).transform).not.toBeNull();
      for (const profile of ['spi-nor-4k', 'stm32f4']) {
        const r = runPowercut(old, neu, pkg, { profile, sample: 0 });
        expect(r.failures).toEqual([]);
      }
    });
  }
});
