// Mutations of stored flash bytes (the params partition: hand-over copies and journal slots) for the
// record-decoder and boot-side fuzz tests. Two families:
//  - corruption: what failing or interrupted flash can leave (bit flips, stray bytes, cleared bits,
//    erased or zeroed runs, a write cut short, random garbage, bytes or whole records/sectors copied
//    over others, i.e. stale duplicates of real records);
//  - forgery: a field of a stored record rewritten *and its CRC resealed*, so the record is valid but
//    says something no honest writer wrote (a buggy writer or an attacker with flash access).
// A case records whether it forged anything: some properties only hold for honest contents.
import fc from 'fast-check';
import { crc32 as zlibCrc32 } from 'node:zlib';

/** A record kind stored in the region: its byte size, CRC position and the fields a forgery may rewrite. */
export interface RecordCodec {
  readonly name: string;
  readonly recordSize: number;
  /** The CRC-32 (zlib) of bytes [0, crcOffset) is stored little-endian at crcOffset. */
  readonly crcOffset: number;
  /** [offset, size] of every field (little-endian). */
  readonly fields: readonly (readonly [number, number])[];
}

/** One place in the region where a record of `codec` is (or could be) stored. */
export interface RecordSite {
  readonly offset: number;
  /** Bytes up to the next site (slot size); at least codec.recordSize. */
  readonly span: number;
  readonly codec: RecordCodec;
}

export interface MutationContext {
  readonly sectorSize: number;
  readonly sites: readonly RecordSite[];
}

/** Where a mutation lands: `hot` picks among the bytes that are not erased (the stored records). */
export interface Pos {
  readonly r: number;
  readonly hot: boolean;
}
export type FieldValue = { readonly abs: number } | { readonly rel: number } | { readonly fromSite: number };

export type FlashMutation =
  | { readonly kind: 'flip'; readonly at: Pos; readonly bit: number }
  | { readonly kind: 'set'; readonly at: Pos; readonly value: number }
  /** A stray program: clears bits only, as NOR can. */
  | { readonly kind: 'and'; readonly at: Pos; readonly value: number }
  | { readonly kind: 'fill'; readonly at: Pos; readonly len: number; readonly value: number }
  /** A write cut short: erased from here to the end of the sector. */
  | { readonly kind: 'cut'; readonly at: Pos }
  | { readonly kind: 'random'; readonly at: Pos; readonly bytes: Uint8Array }
  | { readonly kind: 'splice'; readonly from: Pos; readonly to: Pos; readonly len: number }
  /** A whole record slot (or sector) copied over another: a stale duplicate of a real record. */
  | { readonly kind: 'dup'; readonly sector: boolean; readonly from: number; readonly to: number }
  /** A field of a stored record rewritten and the CRC resealed; `live` picks among the sites holding bytes. */
  | { readonly kind: 'forge'; readonly site: number; readonly live: boolean; readonly field: number; readonly value: FieldValue };

/** journal.ts's record: 28 bytes, CRC-32 of bytes 0..23 at 24. */
export const JOURNAL_CODEC: RecordCodec = {
  name: 'journal',
  recordSize: 28,
  crcOffset: 24,
  // magic, seq, updateId, state, version, reserved, chunk, aux
  fields: [[0, 4], [4, 4], [8, 4], [12, 1], [13, 1], [14, 2], [16, 4], [20, 4]],
};

/** handover.ts's record: 80 bytes, CRC-32 of bytes 0..75 at 76. */
export const HANDOVER_CODEC: RecordCodec = {
  name: 'handover',
  recordSize: 80,
  crcOffset: 76,
  // magic, version, size, seq, the eight one-byte fields, offset, length, splitSize, diffVersion,
  // imageSize, two bytes of the SHA-256, securityCounter
  fields: [
    [0, 4], [4, 2], [6, 2], [8, 4], [12, 1], [13, 1], [14, 1], [15, 1], [16, 1], [17, 1], [18, 1], [19, 1],
    [20, 4], [24, 4], [28, 4], [32, 4], [36, 4], [40, 1], [71, 1], [72, 4],
  ],
};

/** Values that sit on the edges of u8/u16/u32 fields and of the enums the records use. */
export const EDGE_VALUES: readonly number[] = [
  0, 1, 2, 3, 4, 5, 6, 7, 8, 0x41, 0x42, 0x7f, 0x80, 0xfe, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff,
];

const posArb: fc.Arbitrary<Pos> = fc.record({ r: fc.nat(), hot: fc.constantFrom(true, true, true, false) });
const valueArb: fc.Arbitrary<FieldValue> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...EDGE_VALUES).map((abs) => ({ abs })) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 0xffffffff }).map((abs) => ({ abs })) },
  { weight: 3, arbitrary: fc.integer({ min: -3, max: 3 }).map((rel) => ({ rel })) },
  { weight: 2, arbitrary: fc.nat().map((fromSite) => ({ fromSite })) },
);

/** Corruption only (no resealed CRC). */
export const corruptionArb: fc.Arbitrary<FlashMutation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('flip' as const), at: posArb, bit: fc.integer({ min: 0, max: 7 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('set' as const), at: posArb, value: fc.integer({ min: 0, max: 255 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('and' as const), at: posArb, value: fc.integer({ min: 0, max: 255 }) }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('fill' as const), at: posArb, len: fc.integer({ min: 1, max: 96 }), value: fc.constantFrom(0xff, 0xff, 0x00) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('cut' as const), at: posArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('random' as const), at: posArb, bytes: fc.uint8Array({ minLength: 1, maxLength: 40 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('splice' as const), from: posArb, to: posArb, len: fc.integer({ min: 1, max: 120 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('dup' as const), sector: fc.constantFrom(false, false, false, true), from: fc.nat(), to: fc.nat() }) },
);

export const forgeryArb: fc.Arbitrary<FlashMutation> = fc.record({
  kind: fc.constant('forge' as const),
  site: fc.nat(),
  live: fc.constantFrom(true, true, true, false),
  field: fc.nat(),
  value: valueArb,
});

/** 1..maxLength mutations; with `forgeWeight` > 0 some are resealed forgeries. */
export function mutationsArb(maxLength: number, forgeWeight = 1): fc.Arbitrary<FlashMutation[]> {
  const one = forgeWeight > 0 ? fc.oneof({ weight: 3, arbitrary: corruptionArb }, { weight: forgeWeight, arbitrary: forgeryArb }) : corruptionArb;
  return fc.array(one, { minLength: 1, maxLength });
}

function pick(bytes: Uint8Array, p: Pos): number {
  if (p.hot) {
    let n = 0;
    for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0xff) n++;
    if (n > 0) {
      let k = p.r % n;
      for (let i = 0; i < bytes.length; i++) {
        if (bytes[i] !== 0xff && k-- === 0) return i;
      }
    }
  }
  return p.r % bytes.length;
}

export function readLE(b: Uint8Array, off: number, size: number): number {
  let v = 0;
  for (let i = size - 1; i >= 0; i--) v = v * 256 + b[off + i];
  return v;
}

export function writeLE(b: Uint8Array, off: number, size: number, value: number): void {
  const m = 2 ** (8 * size);
  let v = ((value % m) + m) % m;
  for (let i = 0; i < size; i++) {
    b[off + i] = v & 0xff;
    v = Math.floor(v / 256);
  }
}

/** Rewrites the CRC of the record at `off` so it validates again. */
export function reseal(b: Uint8Array, off: number, codec: RecordCodec): void {
  writeLE(b, off + codec.crcOffset, 4, zlibCrc32(b.subarray(off, off + codec.crcOffset)) >>> 0);
}

/**
 * Applies `muts` in place to `bytes` (the region, e.g. a params partition). Returns true when a forgery
 * was applied (a record whose CRC was recomputed over rewritten fields).
 */
export function applyMutations(bytes: Uint8Array, ctx: MutationContext, muts: readonly FlashMutation[]): boolean {
  let forged = false;
  const n = bytes.length;
  for (const m of muts) {
    switch (m.kind) {
      case 'flip':
        bytes[pick(bytes, m.at)] ^= 1 << m.bit;
        break;
      case 'set':
        bytes[pick(bytes, m.at)] = m.value;
        break;
      case 'and':
        bytes[pick(bytes, m.at)] &= m.value;
        break;
      case 'fill': {
        const at = pick(bytes, m.at);
        bytes.fill(m.value, at, Math.min(n, at + m.len));
        break;
      }
      case 'cut': {
        const at = pick(bytes, m.at);
        bytes.fill(0xff, at, (Math.floor(at / ctx.sectorSize) + 1) * ctx.sectorSize);
        break;
      }
      case 'random': {
        const at = pick(bytes, m.at);
        bytes.set(m.bytes.subarray(0, n - at), at);
        break;
      }
      case 'splice': {
        const from = pick(bytes, m.from);
        const to = pick(bytes, m.to);
        const len = Math.min(m.len, n - from, n - to);
        bytes.copyWithin(to, from, from + len);
        break;
      }
      case 'dup': {
        if (m.sector) {
          const sectors = n / ctx.sectorSize;
          const from = (m.from % sectors) * ctx.sectorSize;
          const to = (m.to % sectors) * ctx.sectorSize;
          bytes.copyWithin(to, from, from + ctx.sectorSize);
        } else if (ctx.sites.length > 0) {
          const a = ctx.sites[m.from % ctx.sites.length];
          const b = ctx.sites[m.to % ctx.sites.length];
          bytes.copyWithin(b.offset, a.offset, a.offset + Math.min(a.span, b.span));
        }
        break;
      }
      case 'forge': {
        const live = ctx.sites.filter((s) => bytes.subarray(s.offset, s.offset + s.codec.recordSize).some((x) => x !== 0xff));
        const pool = m.live && live.length > 0 ? live : ctx.sites;
        if (pool.length === 0) break;
        const site = pool[m.site % pool.length];
        const [off, size] = site.codec.fields[m.field % site.codec.fields.length];
        const at = site.offset + off;
        let value: number;
        if ('abs' in m.value) value = m.value.abs;
        else if ('rel' in m.value) value = readLE(bytes, at, size) + m.value.rel;
        else {
          // The same field of another record of the same kind (equal sequence numbers, update ids, ...).
          const same = ctx.sites.filter((s) => s.codec === site.codec);
          value = readLE(bytes, same[m.value.fromSite % same.length].offset + off, size);
        }
        writeLE(bytes, at, size, value);
        reseal(bytes, site.offset, site.codec);
        forged = true;
        break;
      }
    }
  }
  return forged;
}
