// The table-driven calculator from the `crc` package works on a Uint8Array view
// directly; the package's default export first copies its input into a Buffer.
import crc32Calculator from 'crc/calculators/crc32';

/** CRC-32 (IEEE 802.3, the zlib one) of `bytes`, continuing from `previous`, as an unsigned 32-bit number. */
export function crc32(bytes: Uint8Array, previous?: number): number {
  return crc32Calculator(bytes, previous) >>> 0;
}
