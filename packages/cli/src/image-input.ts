// Firmware images as `diff` and `pack` take them: a flat binary, or Intel HEX (`.hex`, `.ihex`, `.ihx`),
// which is read into the flat image it describes and says which address range it took.
import { describeRange, IntelHexError, readIntelHex, type AddressRange } from '@otadiff/diff-gen';
import { readInput } from './files.js';
import { CliError } from './size-arg.js';

export interface ImageInput {
  bytes: Uint8Array;
  /** Set for Intel HEX input: what the file held and what the image is. */
  hex?: { base: number; taken: AddressRange; leftOut: AddressRange[] };
}

const HEX_NAME = /\.(hex|ihex|ihx)$/i;

export function readImage(path: string, what: string): ImageInput {
  const file = readInput(path, what);
  if (!HEX_NAME.test(path)) return { bytes: file };
  try {
    const { bytes, base, taken, leftOut } = readIntelHex(file);
    return { bytes, hex: { base, taken, leftOut } };
  } catch (e) {
    if (e instanceof IntelHexError) throw new CliError(`${what} ${path} is not a valid Intel HEX file: ${e.message}`);
    throw e;
  }
}

/** "OLD a.hex: Intel HEX, took 0x00000000-0x0003fc1f (261,152 bytes); left out 0x10001014-0x10001017 (4 bytes)". */
export function describeImage(what: string, path: string, input: ImageInput): string | undefined {
  if (!input.hex) return undefined;
  const { taken, leftOut } = input.hex;
  const gaps = taken.end - taken.start - taken.dataBytes;
  const left = leftOut.length ? `; left out ${leftOut.map(describeRange).join(', ')} (not contiguous with the image)` : '';
  return `${what} ${path}: Intel HEX, took ${describeRange(taken)}${gaps ? `, ${gaps.toLocaleString('en-US')} gap bytes filled with 0xFF` : ''}${left}`;
}

/** The JSON form of a HEX input's ranges, for --json. */
export function imageJson(input: ImageInput): { base: number; start: number; end: number; leftOut: { start: number; end: number }[] } | undefined {
  if (!input.hex) return undefined;
  const { base, taken, leftOut } = input.hex;
  return { base, start: taken.start, end: taken.end, leftOut: leftOut.map(({ start, end }) => ({ start, end })) };
}
