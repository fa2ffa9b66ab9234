// The table-driven calculator from the `crc` package works on a Uint8Array view
// directly; the package's default export first copies its input into a Buffer.
import crc32Calculator from 'crc/calculators/crc32';

/** CRC-32 (IEEE 802.3, the zlib one) of `bytes`, continuing from `previous`, as an unsigned 32-bit number. */
export type Crc32 = (bytes: Uint8Array, previous?: number) => number;

/** The patcher's default Crc32: pure TypeScript (a device has nothing else); a host may inject zlib's (node-crc32.ts). */
export function crc32(bytes: Uint8Array, previous?: number): number {
  // The calculator starts from a raw register of 0 when given 0, instead of continuing from a CRC of 0
  // (which is what zlib does, and what `undefined`, the start, amounts to).
  return crc32Calculator(bytes, previous === 0 ? undefined : previous) >>> 0;
}
