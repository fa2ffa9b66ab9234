import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FlashError, PowerCutError } from '../src/flash/flash.js';
import { MemoryFlash } from '../src/flash/memory-flash.js';
import { FaultyFlash } from '../src/flash/faulty-flash.js';
import { crc32 } from '../src/crc32.js';
import { defaultLayout, PartitionView } from '../src/flash/partition-layout.js';
import {
  checkHandoverFits,
  decodeHandover,
  encodeHandover,
  HANDOVER_SIZE,
  HandoverError,
  inspectHandover,
  readHandover,
  writeHandover,
  type Handover,
  type HandoverInput,
} from '../src/flash/handover.js';

const u32 = fc.integer({ min: 0, max: 0xffffffff });

const arbPackage = u32.chain((length) =>
  fc.record({ packageLength: fc.constant(length), packageOffset: fc.integer({ min: 0, max: 0xffffffff - length }) }),
);

const arbBase = fc.record({
  seq: u32,
  updateType: fc.constantFrom('kernel' as const, 'app' as const, 'all' as const),
  result: fc.constantFrom('finish' as const, 'breakpoint' as const),
  rollback: fc.boolean(),
  packageSha256: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  targetSlot: fc.constantFrom('A' as const, 'B' as const),
  activeSlot: fc.constantFrom('A' as const, 'B' as const),
  bootCount: fc.integer({ min: 0, max: 255 }),
  confirmed: fc.boolean(),
  securityCounter: u32,
});

const arbHandover: fc.Arbitrary<Handover> = fc
  .tuple(
    arbBase,
    arbPackage,
    fc.oneof(
      fc.record({ firmwareType: fc.constant('raw' as const), imageSize: fc.integer({ min: 1, max: 0xffffffff }) }),
      fc.record({
        firmwareType: fc.constant('diff' as const),
        splitSize: fc.integer({ min: 1, max: 0xffffffff }),
        diffVersion: u32,
      }),
    ),
  )
  .map(([b, p, fw]) => ({ ...b, ...p, ...fw }));

const sample: Handover = {
  seq: 3,
  updateType: 'app',
  result: 'finish',
  firmwareType: 'diff',
  splitSize: 65536,
  diffVersion: 2,
  rollback: true,
  packageOffset: 0,
  packageLength: 123456,
  packageSha256: new Uint8Array(32).map((_, i) => i * 7),
  targetSlot: 'A',
  activeSlot: 'A',
  bootCount: 0,
  confirmed: false,
  securityCounter: 5,
};

/** Applies `edit` to an encoded record and re-seals the CRC, so only the field check can catch it. */
function resealed(r: Handover, edit: (b: Uint8Array, dv: DataView) => void): Uint8Array {
  const b = encodeHandover(r);
  const dv = new DataView(b.buffer);
  edit(b, dv);
  dv.setUint32(76, crc32(b.subarray(0, 76)), true);
  return b;
}

describe('hand-over codec', () => {
  it('round-trips every field value', () => {
    fc.assert(
      fc.property(arbHandover, (r) => {
        const bytes = encodeHandover(r);
        expect(bytes.length).toBe(HANDOVER_SIZE);
        expect(decodeHandover(bytes)).toEqual(r);
      }),
      { numRuns: 500 },
    );
  });

  it('is little-endian at the documented offsets', () => {
    const b = encodeHandover(sample);
    expect([...b.subarray(0, 4)].map((c) => String.fromCharCode(c)).join('')).toBe('OTAH');
    const dv = new DataView(b.buffer);
    expect(dv.getUint32(8, true)).toBe(3);
    expect([b[12], b[13], b[14], b[15], b[16], b[17], b[18], b[19]]).toEqual([2, 1, 2, 1, 0x41, 0x41, 0, 0]);
    expect(dv.getUint32(24, true)).toBe(123456);
    expect(dv.getUint32(28, true)).toBe(65536);
    expect(b.subarray(40, 72)).toEqual(sample.packageSha256);
    expect(dv.getUint32(72, true)).toBe(5);
  });

  it('rejects every single-bit flip', () => {
    const b = encodeHandover(sample);
    for (let bit = 0; bit < HANDOVER_SIZE * 8; bit++) {
      const c = b.slice();
      c[bit >> 3] ^= 1 << (bit & 7);
      expect(() => decodeHandover(c)).toThrow(HandoverError);
    }
    fc.assert(
      fc.property(arbHandover, fc.integer({ min: 0, max: HANDOVER_SIZE * 8 - 1 }), (r, bit) => {
        const c = encodeHandover(r);
        c[bit >> 3] ^= 1 << (bit & 7);
        expect(() => decodeHandover(c)).toThrow(HandoverError);
      }),
      { numRuns: 300 },
    );
  });

  it('rejects semantic corruption even with a valid CRC', () => {
    const raw: Handover = { ...sample, firmwareType: 'raw', imageSize: 1000 } as Handover;
    const cases: Array<[string, Uint8Array, RegExp]> = [
      ['magic', resealed(sample, (_b, dv) => dv.setUint32(0, 0x12345678, true)), /magic/],
      ['version', resealed(sample, (_b, dv) => dv.setUint16(4, 2, true)), /version/],
      ['size', resealed(sample, (_b, dv) => dv.setUint16(6, 81, true)), /size/],
      ['updateType 0', resealed(sample, (b) => (b[12] = 0)), /updateType/],
      ['updateType 4', resealed(sample, (b) => (b[12] = 4)), /updateType/],
      ['updateType ff', resealed(sample, (b) => (b[12] = 0xff)), /updateType/],
      ['result', resealed(sample, (b) => (b[13] = 3)), /result/],
      ['firmwareType', resealed(sample, (b) => (b[14] = 3)), /firmwareType/],
      ['rollback', resealed(sample, (b) => (b[15] = 2)), /rollback/],
      ['targetSlot', resealed(sample, (b) => (b[16] = 0x43)), /targetSlot/],
      ['activeSlot', resealed(sample, (b) => (b[17] = 0)), /activeSlot/],
      ['confirmed', resealed(sample, (b) => (b[18] = 0xff)), /confirmed/],
      ['diff without splitSize', resealed(sample, (_b, dv) => dv.setUint32(28, 0, true)), /splitSize/],
      ['diff with imageSize', resealed(sample, (_b, dv) => dv.setUint32(36, 5, true)), /imageSize/],
      ['raw with splitSize', resealed(raw, (_b, dv) => dv.setUint32(28, 5, true)), /diff fields/],
      ['raw with diffVersion', resealed(raw, (_b, dv) => dv.setUint32(32, 1, true)), /diff fields/],
      ['raw without imageSize', resealed(raw, (_b, dv) => dv.setUint32(36, 0, true)), /imageSize/],
      [
        'package past 4 GiB',
        resealed(sample, (_b, dv) => {
          dv.setUint32(20, 0xffff0000, true);
          dv.setUint32(24, 0x10000, true);
        }),
        /4 GiB/,
      ],
      ['bad CRC', (() => { const b = encodeHandover(sample); b[76] ^= 1; return b; })(), /CRC/],
      ['erased', new Uint8Array(HANDOVER_SIZE).fill(0xff), /magic/],
      ['short', encodeHandover(sample).subarray(0, 79), /80 bytes/],
      ['long', new Uint8Array(81), /80 bytes/],
    ];
    for (const [name, bytes, msg] of cases) {
      expect(() => decodeHandover(bytes), name).toThrow(HandoverError);
      expect(() => decodeHandover(bytes), name).toThrow(msg);
    }
  });

  it('refuses to encode an invalid record', () => {
    const bad: unknown[] = [
      { ...sample, bootCount: 256 },
      { ...sample, bootCount: -1 },
      { ...sample, seq: 2 ** 32 },
      { ...sample, seq: 0.5 },
      { ...sample, packageSha256: new Uint8Array(31) },
      { ...sample, splitSize: 0 },
      { ...sample, updateType: 'bootloader' },
      { ...sample, targetSlot: 'C' },
      { ...sample, firmwareType: 'zip' },
      { ...sample, rollback: 1 },
      { ...sample, firmwareType: 'raw', imageSize: 0 },
      { ...sample, packageOffset: 0xffffffff, packageLength: 1 },
    ];
    for (const r of bad) expect(() => encodeHandover(r as Handover), JSON.stringify(r)).toThrow(HandoverError);
  });
});

function input(n: number): HandoverInput {
  return { ...sample, bootCount: n & 0xff, packageLength: 1000 + n, packageSha256: new Uint8Array(32).fill(n & 0xff) } as HandoverInput;
}

describe('hand-over store', () => {
  const layout = defaultLayout({ appSize: 4096, otaSize: 4096, splitSize: 1024, sectorSize: 256, programUnit: 8 });

  it('alternates between the two copies and reads the newest', () => {
    const mem = new MemoryFlash(layout.flash);
    const params = new PartitionView(mem, layout.params);
    expect(readHandover(params)).toBeNull();
    expect(inspectHandover(params).map((c) => c.status)).toEqual(['erased', 'erased']);
    const w1 = writeHandover(params, input(1));
    expect(w1.seq).toBe(1);
    expect(readHandover(params)).toEqual(w1);
    const w2 = writeHandover(params, input(2));
    expect(w2.seq).toBe(2);
    expect(inspectHandover(params).map((c) => (c.status === 'valid' ? c.record.seq : c.status))).toEqual([1, 2]);
    const w3 = writeHandover(params, input(3));
    expect(inspectHandover(params).map((c) => (c.status === 'valid' ? c.record.seq : c.status))).toEqual([3, 2]);
    expect(readHandover(params)).toEqual(w3);
    // A corrupt newest copy falls back to the other one, and the next write replaces the corrupt one.
    mem.raw[layout.params.offset + 10] ^= 4;
    expect(inspectHandover(params)[0].status).toBe('invalid');
    expect(readHandover(params)).toEqual(w2);
    const w4 = writeHandover(params, input(4));
    expect(w4.seq).toBe(3);
    expect(inspectHandover(params).map((c) => (c.status === 'valid' ? c.record.seq : c.status))).toEqual([3, 2]);
    // Journal sectors (2, 3) untouched.
    expect(mem.raw.subarray(layout.params.offset + 512, layout.params.offset + 1024).every((b) => b === 0xff)).toBe(true);
  });

  it('checks its sectors', () => {
    const params = new PartitionView(new MemoryFlash(layout.flash), layout.params);
    expect(() => readHandover(params, { firstSector: 3 })).toThrow(FlashError);
    const tiny = new MemoryFlash({ size: 256, sectorSize: 64 });
    expect(() => readHandover(tiny)).toThrow(/cannot hold/);
  });

  for (const tear of ['none', 'prefix', 'random', 'bits'] as const) {
    it(`a power cut at every op of a write sequence never loses the previous record (tear '${tear}')`, () => {
      const WRITES = 6;
      const clean = new FaultyFlash(new MemoryFlash(layout.flash));
      const cleanView = new PartitionView(clean, layout.params);
      for (let n = 0; n < WRITES; n++) writeHandover(cleanView, input(n));
      const total = clean.ops;
      expect(total).toBe(2 * WRITES); // one erase + one program each

      for (let k = 0; k < total; k++) {
        for (const seed of [1, 2, 3, 4]) {
          const ff = new FaultyFlash(new MemoryFlash(layout.flash), { cutAt: k, tear, seed });
          const params = new PartitionView(ff, layout.params);
          let last: Handover | null = null;
          let n = 0;
          try {
            for (; n < WRITES; n++) last = writeHandover(params, input(n));
          } catch (e) {
            expect(e).toBeInstanceOf(PowerCutError);
          }
          ff.reboot();
          const got = readHandover(params);
          const attempted = { ...input(n), seq: last === null ? 1 : last.seq + 1 };
          if (last === null) expect([null, attempted]).toContainEqual(got);
          else expect([last, attempted]).toContainEqual(got);
          // Carry on: the next write lands on top of whatever survived.
          const next = writeHandover(params, input(100));
          expect(readHandover(params)).toEqual(next);
          expect(next.seq).toBe(got === null ? 1 : got.seq + 1);
        }
      }
    });
  }
});

describe('checkHandoverFits', () => {
  const inPlace = defaultLayout({ appSize: 8192, otaSize: 4096, splitSize: 4096 });
  const ab = defaultLayout({ appSize: 8192, otaSize: 4096, splitSize: 4096, ab: true });

  it('accepts a fitting record and rejects the rest', () => {
    const fit: Handover = { ...sample, packageLength: 4096 };
    checkHandoverFits(fit, inPlace);
    checkHandoverFits({ ...fit, targetSlot: 'B' }, ab);
    expect(() => checkHandoverFits({ ...fit, packageOffset: 1 }, inPlace)).toThrow(/OTA partition/);
    expect(() => checkHandoverFits({ ...fit, targetSlot: 'B' }, inPlace)).toThrow(/no slot B/);
    expect(() => checkHandoverFits({ ...fit, activeSlot: 'B' }, inPlace)).toThrow(/no slot B/);
    const raw = { ...fit, firmwareType: 'raw', imageSize: 8193 } as Handover;
    expect(() => checkHandoverFits(raw, ab)).toThrow(/does not fit slot/);
    checkHandoverFits({ ...raw, imageSize: 8192 } as Handover, ab);
  });
});
