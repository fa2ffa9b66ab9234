// Boot-side fuzz: devices with a real update pending (staged by the OTA service's set_boot, part-way
// through a restore after a power cut, on trial, confirmed, rolled back; in place, A/B, OTA_RAW, signed),
// whose params partition (the two hand-over copies and the two journal sectors) is then corrupted or
// forged (see helpers/flash-mutations.ts), then boot() runs on a flash that checks and records every
// access. Whatever the params say:
//  - every access stays inside the flash and inside one partition, no program touches a unit that is not
//    entirely erased (the program-once rule of ECC flash, held on every device), no single read is larger
//    than the RAM the restore declares, and the hand-over is never written;
// Devices: 1 KiB sectors of 0xFF NOR with 1-byte units, and of 0x00 program-once flash with 8-byte units.
//  - boot() returns a well-formed outcome consistent with the hand-over it read, within SLOW_MS. The
//    simulated flash never fails, so an exception can only be boot() giving up: none is allowed;
//  - no slot or backup byte changes unless the journal already said this update was under way, or the
//    package in the OTA partition matches the hand-over's SHA-256 and the old image matches the package
//    (and no app slot before a 'verified' record for this update reached the journal); a package that
//    does not match its hand-over SHA-256 changes no slot at all, even under way; writes go only to the
//    hand-over's target slot (and the backup, in place), never to the running slot of an A/B update;
//  - honest contents (corruption only) never put an image that is not NEW on trial, and params that still
//    read the same as before give exactly the unmutated device's boot and slots.
// The gaps of boot-restore.ts it found are pinned in 'known gaps (reported)' at the end.
// CI runs 300 cases with a fixed seed; `npm run fuzz` runs many more (OTADIFF_FUZZ_RUNS, OTADIFF_FUZZ_SEED;
// OTADIFF_FUZZ_DEBUG=1 prints what the cases reached).
import { beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { generatePackage, generateKeyPair, loadPrivateKey, packRaw, trustedKeyOf } from '@otadiff/diff-gen';
import { chunkLength, parseHeader, type PackageHeader } from '../src/package-format.js';
import { crc32 } from '../src/crc32.js';
import type { TrustedKey } from '../src/signature.js';
import { boot, FailCode, restoreRamBytes, type BootOutcome } from '../src/restore/boot-restore.js';
import { prepareDevice, type DeviceOptions } from '../src/restore/powercut.js';
import { confirmBoot } from '../src/restore/stage.js';
import { FaultyFlash } from '../src/flash/faulty-flash.js';
import { BackupRing } from '../src/restore/backup-ring.js';
import { MemoryFlash } from '../src/flash/memory-flash.js';
import { PowerCutError, roundUp, sectorLength, sectorStart, uniformSectorSize, type Flash, type FlashGeometry, type OverwriteMode } from '../src/flash/flash.js';
import { openPartition, type Partition, type PartitionLayout } from '../src/flash/partition-layout.js';
import { checkHandoverFits, encodeHandover, readHandover, type Handover, type Slot } from '../src/flash/handover.js';
import { deriveUpdateId, encodeJournalEntry, Journal, JOURNAL_RECORD_SIZE, type JournalEntry } from '../src/flash/journal.js';
import { applyMutations, HANDOVER_CODEC, JOURNAL_CODEC, mutationsArb, readLE, type FlashMutation, type MutationContext, type RecordSite } from './helpers/flash-mutations.js';
import { FUZZ_SEED, fuzzRuns, suiteWatchdog } from './fuzz-watchdog.js';
import { image, pair } from './helpers/images.js';
import { thumbPair } from './helpers/thumb-images.js';

const RUNS = fuzzRuns(300);
const SEED = FUZZ_SEED;
/** One boot of these ~10 KB images takes a few milliseconds. */
const SLOW_MS = 2_000;
const HANG_MS = 15_000;
const SECTOR = 1024;

type Op = { kind: 'read' | 'program' | 'erase'; offset: number; length: number; partition: string; data?: Uint8Array };

/** A Flash that records every access and notes any that leaves the flash, straddles partitions or overwrites. */
class CheckingFlash implements Flash {
  readonly geometry: FlashGeometry;
  readonly onOverwrite: OverwriteMode | undefined;
  readonly ops: Op[] = [];
  readonly violations: string[] = [];
  private readonly parts: Partition[];

  constructor(
    private readonly base: MemoryFlash,
    layout: PartitionLayout,
  ) {
    this.geometry = base.geometry;
    this.onOverwrite = base.onOverwrite;
    this.parts = [layout.appA, layout.appB, layout.ota, layout.params, layout.backup].filter((p): p is Partition => p !== undefined);
  }

  private note(kind: Op['kind'], offset: number, length: number, data?: Uint8Array): void {
    const size = this.geometry.size;
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
      this.violations.push(`${kind} [${offset}, +${length}) outside the ${size}-byte flash`);
      this.ops.push({ kind, offset, length, partition: '?' });
      return;
    }
    const p = this.parts.find((q) => offset >= q.offset && offset + length <= q.offset + q.size && (length > 0 || offset < q.offset + q.size));
    if (p === undefined && length > 0) this.violations.push(`${kind} [${offset}, +${length}) is not inside one partition`);
    this.ops.push({ kind, offset, length, partition: p?.name ?? '-', data });
  }

  read(offset: number, dst: Uint8Array, dstOffset?: number, length?: number): void {
    this.note('read', offset, length ?? dst.length - (dstOffset ?? 0));
    this.base.read(offset, dst, dstOffset, length);
  }

  program(offset: number, data: Uint8Array): void {
    this.note('program', offset, data.length, data.slice());
    const old = this.base.raw.subarray(offset, offset + data.length);
    const unit = this.geometry.programUnit;
    for (let u = 0; u < old.length; u += unit) {
      if (old.subarray(u, u + unit).some((b) => b !== this.geometry.erasedValue)) {
        this.violations.push(`program at ${offset + u} over a unit that is not erased (programmed twice)`);
        break;
      }
    }
    this.base.program(offset, data);
  }

  erase(sector: number): void {
    this.note('erase', sectorStart(this.geometry, sector), sectorLength(this.geometry, sector));
    this.base.erase(sector);
  }
}

interface Base {
  name: string;
  layout: PartitionLayout;
  contents: Uint8Array;
  pkg: Uint8Array;
  header: PackageHeader;
  old: Uint8Array;
  neu: Uint8Array;
  trustedKeys?: TrustedKey[];
  overwrite: OverwriteMode;
  /** boot() on the unmutated contents. */
  baseline: { outcome: BootOutcome; after: Uint8Array };
}


const sha256 = (b: Uint8Array) => new Uint8Array(createHash('sha256').update(b).digest());
const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Buffer.compare(a, b) === 0;
const REASONS = Object.keys(FailCode);

function slotPartition(layout: PartitionLayout, slot: Slot): Partition | undefined {
  return slot === 'A' ? layout.appA : layout.appB;
}

function bytesOf(raw: Uint8Array, p: Partition | undefined, length = p?.size ?? 0): Uint8Array {
  return p === undefined ? new Uint8Array(0) : raw.subarray(p.offset, p.offset + Math.min(length, p.size));
}

/** Everything but the params partition (the journal's bookkeeping). */
function outsideParams(raw: Uint8Array, layout: PartitionLayout): Uint8Array[] {
  return [raw.subarray(0, layout.params.offset), raw.subarray(layout.params.offset + layout.params.size)];
}

function runBoot(flash: Flash, base: Pick<Base, 'layout' | 'trustedKeys'>): BootOutcome {
  return boot({ flash, layout: base.layout, trustedKeys: base.trustedKeys });
}

type Region = 'params' | 'journal' | 'handover';

/** The mutated bytes and their record sites: the whole params partition, or only the journal's or the hand-over's two sectors. */
function paramsRegion(params: Uint8Array, layout: PartitionLayout, region: Region): { bytes: Uint8Array; ctx: MutationContext } {
  const ss = uniformSectorSize(layout.flash)!;
  const slot = roundUp(JOURNAL_RECORD_SIZE, layout.flash.programUnit);
  const sites: RecordSite[] = [];
  if (region !== 'journal') for (const offset of [0, ss]) sites.push({ offset, span: ss, codec: HANDOVER_CODEC });
  if (region !== 'handover') {
    const first = region === 'journal' ? 0 : 2;
    for (const s of [first, first + 1]) for (let i = 0; (i + 1) * slot <= ss; i++) sites.push({ offset: s * ss + i * slot, span: slot, codec: JOURNAL_CODEC });
  }
  const bytes = region === 'params' ? params : region === 'journal' ? params.subarray(2 * ss, 4 * ss) : params.subarray(0, 2 * ss);
  return { bytes, ctx: { sectorSize: ss, sites } };
}

/** What boot() will read from the params partition, read with the modules' own readers on a copy. */
function paramsState(contents: Uint8Array, geometry: FlashGeometry, layout: PartitionLayout): { h: Handover | null; latest: JournalEntry | null } {
  const params = openPartition(new MemoryFlash(geometry, { contents }), layout, 'params');
  return { h: readHandover(params), latest: new Journal(params).latest() };
}

async function makeBases(): Promise<Base[]> {
  const { old, neu } = pair(9000);
  const key = loadPrivateKey(generateKeyPair('ed25519').privateKey);
  // A Thumb-2 pair for the transformed (diff_version 3) packages: the restore reads OLD through the prediction.
  const thumb = thumbPair(110, 5);
  const packages: { name: string; pkg: Uint8Array; trustedKeys?: TrustedKey[]; images?: { old: Uint8Array; neu: Uint8Array } }[] = [
    { name: 'inplace', pkg: (await generatePackage(old, neu, { mode: 'inplace', splitSize: 4096, dictSize: 4096 })).package },
    { name: 'ab', pkg: (await generatePackage(old, neu, { mode: 'ab', splitSize: 4096, dictSize: 4096 })).package },
    { name: 'raw', pkg: packRaw(neu, { splitSize: 4096 }).package },
    {
      name: 'inplace-signed',
      pkg: (await generatePackage(old, neu, { mode: 'inplace', splitSize: 4096, dictSize: 4096, signingKey: key, securityCounter: 2 })).package,
      trustedKeys: [trustedKeyOf(key)],
    },
    { name: 'inplace-thumb2', pkg: (await generatePackage(thumb.old, thumb.neu, { mode: 'inplace', splitSize: 4096, dictSize: 4096 })).package, images: thumb },
    { name: 'ab-thumb2', pkg: (await generatePackage(thumb.old, thumb.neu, { mode: 'ab', splitSize: 4096, dictSize: 4096 })).package, images: thumb },
  ];
  const bases: Base[] = [];
  const devices: { name: string; opts: DeviceOptions }[] = [
    { name: '', opts: { sectorSize: SECTOR } },
    { name: ' ecc0', opts: { sectorSize: SECTOR, programUnit: 8, erasedValue: 0, overwrite: 'program-once' } },
  ];
  for (const device of devices)
  for (const p of device.name === '' ? packages : packages.filter((q) => q.name === 'inplace' || q.name === 'ab' || q.name === 'inplace-thumb2')) {
    const images = p.images ?? { old, neu };
    const dev = prepareDevice(images.old, p.pkg, device.opts);
    const header = parseHeader(p.pkg);
    if (p.images !== undefined) expect(header.diffVersion).toBe(3);
    const states: [string, Uint8Array][] = [['staged', dev.flash.snapshot()]];
    // Part-way through the restore: power cut at a quarter, half and three quarters of a clean run's operations.
    const clean = new FaultyFlash(new MemoryFlash(dev.flash.geometry, { contents: dev.flash.snapshot(), onOverwrite: dev.overwrite }));
    runBoot(clean, { layout: dev.layout, trustedKeys: p.trustedKeys });
    for (const frac of p.name === 'inplace-signed' ? [0.5] : [0.25, 0.5, 0.75]) {
      const k = Math.floor(clean.ops * frac);
      const mem = new MemoryFlash(dev.flash.geometry, { contents: dev.flash.snapshot(), onOverwrite: dev.overwrite });
      const cut = new FaultyFlash(mem, { cutAt: k, tear: 'random', seed: k });
      expect(() => runBoot(cut, { layout: dev.layout, trustedKeys: p.trustedKeys })).toThrow(PowerCutError);
      states.push([`cut@${k}/${clean.ops}`, mem.snapshot()]);
    }
    if (p.name !== 'inplace-signed') {
      const mem = new MemoryFlash(dev.flash.geometry, { contents: dev.flash.snapshot(), onOverwrite: dev.overwrite });
      expect(runBoot(mem, { layout: dev.layout }).kind).toBe('trial');
      states.push(['trial', mem.snapshot()]);
      if (dev.layout.appB !== undefined) {
        const confirmed = new MemoryFlash(dev.flash.geometry, { contents: mem.snapshot(), onOverwrite: dev.overwrite });
        confirmBoot(confirmed, dev.layout, dev.targetSlot);
        states.push(['confirmed', confirmed.snapshot()]);
        for (let i = 0; i < 3; i++) runBoot(mem, { layout: dev.layout });
        expect(runBoot(mem, { layout: dev.layout })).toMatchObject({ kind: 'old', reason: 'rolledBack' });
        states.push(['rolled-back', mem.snapshot()]);
      }
    }
    for (const [state, contents] of states) {
      const mem = new MemoryFlash(dev.flash.geometry, { contents, onOverwrite: dev.overwrite });
      const outcome = runBoot(mem, { layout: dev.layout, trustedKeys: p.trustedKeys });
      bases.push({ name: `${p.name}${device.name} ${state}`, overwrite: dev.overwrite, layout: dev.layout, contents, pkg: p.pkg, header, ...images, trustedKeys: p.trustedKeys, baseline: { outcome, after: mem.snapshot() } });
    }
  }
  return bases;
}

describe('boot fuzz: mutated hand-over and journal', () => {
  let bases: Base[] = [];
  const seen = new Map<string, number>();
  const count = (k: string) => seen.set(k, (seen.get(k) ?? 0) + 1);

  beforeAll(async () => {
    bases = await makeBases();
  });
  const watchdog = suiteWatchdog('fuzz-boot', HANG_MS, () => 4 * SECTOR);

  it('the unmutated devices boot as expected', () => {
    const kinds = Object.fromEntries(bases.map((b) => [b.name, b.baseline.outcome.kind]));
    for (const [name, kind] of Object.entries(kinds)) {
      const expected = name.endsWith('confirmed') ? 'normal' : name.endsWith('rolled-back') ? 'old' : 'trial';
      expect({ name, kind }).toEqual({ name, kind: expected });
    }
    expect(bases.length).toBeGreaterThanOrEqual(15);
  });

  /** Checks one boot of `base` with params mutated by `muts`; returns a label of what happened. */
  function check(base: Base, where: Region, muts: FlashMutation[]): string {
    const { layout } = base;
    const geometry = layout.flash;
    const mem = new MemoryFlash(geometry, { contents: base.contents, onOverwrite: base.overwrite });
    const params = mem.raw.subarray(layout.params.offset, layout.params.offset + layout.params.size);
    // Some cases mutate only the journal (on a staged device the hand-over holds most live bytes), some
    // only the hand-over (so that its fields, the SHA-256 included, get forged often).
    const region = paramsRegion(params, layout, where);
    const forged = applyMutations(region.bytes, region.ctx, muts);
    const pre = mem.snapshot();

    // What the device holds, judged independently of boot().
    const { h, latest } = paramsState(pre, geometry, layout);
    const pending = h !== null && !h.confirmed && h.result === 'finish';
    const id = h === null ? -1 : deriveUpdateId(h.packageSha256, h.seq);
    const underWay = pending && latest !== null && latest.updateId === id && latest.state !== 'idle' && latest.state !== 'failed';
    const pkgFits = h !== null && h.packageOffset + h.packageLength <= layout.ota.size;
    const pkgMatches = pkgFits && same(sha256(pre.subarray(layout.ota.offset + h.packageOffset, layout.ota.offset + h.packageOffset + h.packageLength)), h.packageSha256);
    const active = h === null ? undefined : slotPartition(layout, h.activeSlot);
    const oldMatches = h !== null && (h.firmwareType === 'raw' || (active !== undefined && same(sha256(bytesOf(pre, active, base.header.oldSize)), base.header.oldSha256)));
    // In place, a backup ring holding records of this update shows a restore under way even when the
    // journal lost it: the restore resumes from the flash then.
    const backupShowsOurs =
      h !== null &&
      h.targetSlot === h.activeSlot &&
      h.firmwareType === 'diff' &&
      new BackupRing(openPartition(new MemoryFlash(geometry, { contents: pre }), layout, 'backup'), id).hasRecords();

    // The hand-over was rewritten under the same update id (same SHA-256 and seq) as the original one.
    const orig = paramsState(base.contents, geometry, layout);
    const rewritten = h !== null && orig.h !== null && deriveUpdateId(orig.h.packageSha256, orig.h.seq) === id && JSON.stringify(h) !== JSON.stringify(orig.h);

    const flash = new CheckingFlash(mem, layout);
    const t0 = performance.now();
    let outcome: BootOutcome;
    try {
      outcome = watchdog.guard(params.slice(), () => runBoot(flash, base));
    } catch (e) {
      // The simulated flash never fails: any exception is boot() giving up on what the params say.
      // The gaps this fuzz found (an exhausted journal sequence, a hand-over rewritten under way) are
      // fixed; see the tests at the end. Any exception fails the property.
      throw new Error(`boot threw ${(e as Error)?.name}: ${(e as Error)?.message}\n${(e as Error)?.stack}`);
    }
    const ms = performance.now() - t0;
    if (ms > SLOW_MS) throw new Error(`boot took ${ms.toFixed(0)} ms`);
    const post = mem.raw;

    // Every access inside the flash and inside one partition; nothing writes the hand-over.
    expect(flash.violations).toEqual([]);
    const ss = uniformSectorSize(geometry)!;
    const writes = flash.ops.filter((o) => o.kind !== 'read');
    for (const w of writes) {
      if (w.partition === 'params') expect(w.offset - layout.params.offset, 'a write to the hand-over copies').toBeGreaterThanOrEqual(2 * ss);
    }
    // No single read larger than the RAM the restore declares (or a journal sector).
    const bound = Math.max(restoreRamBytes(base.header), ss);
    for (const r of flash.ops) if (r.kind === 'read') expect(r.length).toBeLessThanOrEqual(bound);

    // A well-formed outcome, consistent with the hand-over boot() read.
    if (h === null || !pending) {
      expect(outcome).toEqual({ kind: 'normal', slot: h?.activeSlot ?? 'A' });
      expect(writes).toEqual([]);
    } else if (outcome.kind === 'trial') {
      expect(outcome.slot).toBe(h.targetSlot);
      expect(Number.isInteger(outcome.attempt) && outcome.attempt >= 1).toBe(true);
    } else if (outcome.kind === 'old') {
      expect(outcome.slot).toBe(h.activeSlot);
      expect(REASONS).toContain(outcome.reason);
      // In place there is no old image to roll back to: a roll-back decided in this boot needs two slots
      // (one replayed from the journal may come from a hand-over forged since).
      const replayed = latest !== null && latest.updateId === id && latest.state === 'failed';
      if (outcome.reason === 'rolledBack' && !replayed) expect(h.targetSlot, 'a roll-back in place').not.toBe(h.activeSlot);
      expect(outcome.detail.length).toBeGreaterThan(8);
    } else if (outcome.kind === 'halt') {
      // Halting is for an in-place restore under way that cannot go on; a hand-over changed under way
      // is judged by the layout (single slot: it was in place), not by the slots it names now.
      if (outcome.reason === 'handover') {
        expect(layout.appB, 'halt on an A/B device').toBeUndefined();
        expect(forged && underWay && rewritten, 'handover halt without a hand-over rewritten under way').toBe(true);
      } else {
        expect(h.targetSlot).toBe(h.activeSlot);
        expect(['newImage', 'backup']).toContain(outcome.reason);
      }
    } else {
      throw new Error(`a pending update booted as ${JSON.stringify(outcome)}`);
    }

    // Destruction: which partitions changed, and what allowed it.
    const slotWrites = writes.filter((w) => w.partition !== 'params');
    const target = h === null ? undefined : slotPartition(layout, h.targetSlot);
    for (const w of slotWrites) {
      const allowed = [target?.name, h !== null && h.targetSlot === h.activeSlot && h.firmwareType === 'diff' ? layout.backup.name : undefined];
      expect(allowed, `${w.kind} at ${w.offset} in ${w.partition}`).toContain(w.partition);
    }
    if (h !== null && pending && !pkgMatches) expect(slotWrites, 'writes with a package that does not match the hand-over SHA-256').toEqual([]);
    if (h !== null && pending && !underWay && slotWrites.length > 0) {
      expect(pkgMatches && (oldMatches || backupShowsOurs), 'destruction without a verified package and old image').toBe(true);
      // ... and no app slot before a 'verified' record for this update reached the journal (the backup,
      // which holds no image, may be cleared once the checks have passed).
      const appWrites = slotWrites.filter((w) => w.partition !== layout.backup.name);
      const first = appWrites.length > 0 ? flash.ops.indexOf(appWrites[0]) : flash.ops.length;
      const verified = appWrites.length === 0 || flash.ops.slice(0, first).some((o) => {
        if (o.kind !== 'program' || o.partition !== 'params' || o.data === undefined || o.data.length < JOURNAL_RECORD_SIZE) return false;
        return readLE(o.data, 0, 4) === 0x4a41544f && o.data[12] === 2 && readLE(o.data, 8, 4) === id;
      });
      expect(verified, "a slot written before the journal said 'verified'").toBe(true);
    }
    if (h !== null && pending && h.targetSlot !== h.activeSlot) expect(same(bytesOf(post, active), bytesOf(pre, active)), 'the running slot of an A/B update changed').toBe(true);

    // Honest contents: trial means the target holds NEW; params that read as before boot as before.
    if (!forged && outcome.kind === 'trial') expect(same(sha256(bytesOf(post, target, base.header.newSize)), base.header.newSha256), 'on trial with an image that is not NEW').toBe(true);
    // Honest contents, in place: 'old' means the old image boots, so the slot must hold it (a restore
    // whose journal lost its records resumes from what the backup slots show; see the gaps below).
    if (!forged && outcome.kind === 'old' && h !== null && h.targetSlot === h.activeSlot)
      expect(same(bytesOf(post, active, base.old.length), base.old), 'in place, old outcome with a slot that is not OLD').toBe(true);
    const unchanged = JSON.stringify([h, latest]) === JSON.stringify([orig.h, orig.latest]);
    if (unchanged) {
      expect(outcome).toEqual(base.baseline.outcome);
      const [a, b] = outsideParams(post, layout);
      const [c, d] = outsideParams(base.baseline.after, layout);
      expect(same(a, c) && same(b, d), 'slots differ from the unmutated boot').toBe(true);
    }
    return `${forged ? 'forged' : 'corrupt'} ${unchanged ? 'same' : pending ? (underWay ? 'under-way' : 'from-scratch') : 'not-pending'} ${outcome.kind}${'reason' in outcome ? `:${outcome.reason}` : ''}${slotWrites.length > 0 ? ' wrote' : ''}`;
  }

  it(
    `boot() on mutated params stays in bounds, refuses without verification and never crashes (${RUNS} runs, seed ${SEED})`,
    () => {
      fc.assert(
        fc.property(fc.nat({ max: bases.length - 1 }), fc.constantFrom<Region>('params', 'journal', 'handover'), mutationsArb(4), (which, where, muts) => {
          count(check(bases[which], where, muts));
        }),
        { seed: SEED, numRuns: RUNS },
      );
      if (process.env.OTADIFF_FUZZ_DEBUG) console.log([...seen].sort().map(([k, v]) => `${v}\t${k}`).join('\n'));
      // The mutations must reach the interesting paths, not only bounce off the CRCs.
      if (RUNS >= 300) {
        const labels = [...seen.keys()].join(' | ');
        for (const part of ['forged', 'corrupt', 'same', 'under-way', 'from-scratch', 'not-pending', 'trial', 'old:', 'wrote']) expect(labels, part).toContain(part);
      }
    },
    Math.max(60_000, RUNS * 100),
  );

  // Gaps of boot-restore.ts this fuzz found, all fixed since: each test states the behaviour wanted.
  describe('gaps it found, fixed', () => {
    const pick = (prefix: string) => {
      const all = bases.filter((b) => b.name.startsWith(prefix));
      return all[Math.floor(all.length / 2)];
    };
    const onCopy = (b: Base) => new MemoryFlash(b.layout.flash, { contents: b.contents, onOverwrite: b.overwrite });
    /** Rewrites hand-over copy 0 in place with the same seq (so the same update id) and a valid CRC. */
    const rewriteHandover = (mem: MemoryFlash, layout: PartitionLayout, change: Partial<Handover>) => {
      const params = openPartition(mem, layout, 'params');
      const h = readHandover(params)!;
      params.erase(0);
      params.program(0, encodeHandover({ ...h, ...change } as Handover));
      expect(readHandover(params)).toMatchObject(change);
    };

    it('in place, a journal that lost the records of an update under way does not boot the half-restored slot as the old image', () => {
      const b = pick('inplace cut@');
      const mem = onCopy(b);
      new Journal(openPartition(mem, b.layout, 'params')).format();
      const out = runBoot(mem, b);
      const slot = bytesOf(mem.raw, b.layout.appA, b.old.length);
      expect({ kind: out.kind, slotIsOld: same(slot, b.old) }).not.toEqual({ kind: 'old', slotIsOld: false });
    });

    it('a hand-over rewritten under way to a package range past the OTA partition is refused, not a FlashError on every boot', () => {
      const b = pick('ab cut@');
      const mem = onCopy(b);
      rewriteHandover(mem, b.layout, { packageOffset: b.layout.ota.size - 64 });
      expect(runBoot(mem, b)).toMatchObject({ kind: 'old', reason: 'handover' });
    });

    it('an A/B hand-over rewritten under way to target the running slot is refused and leaves that slot alone', () => {
      const b = pick('ab cut@');
      const mem = onCopy(b);
      rewriteHandover(mem, b.layout, { targetSlot: 'A' });
      let threw: string | null = null;
      try {
        runBoot(mem, b);
      } catch (e) {
        threw = `${(e as Error).name}: ${(e as Error).message}`;
      }
      expect({ threw, runningSlotIsOld: same(bytesOf(mem.raw, b.layout.appA, b.old.length), b.old) }).toEqual({ threw: null, runningSlotIsOld: true });
    });

    it('a journal whose sequence number is exhausted does not stop every boot', () => {
      const b = bases.find((x) => x.name === 'ab staged')!;
      const mem = onCopy(b);
      const params = openPartition(mem, b.layout, 'params');
      const rec = new Uint8Array(JOURNAL_RECORD_SIZE);
      encodeJournalEntry({ seq: 0xffffffff, updateId: 1, state: 'failed', chunk: 0, aux: 0 }, rec);
      params.program(2 * uniformSectorSize(b.layout.flash)!, rec);
      expect(() => runBoot(mem, b)).not.toThrow();
    });
  });
});
