// The ESP8266 application image (esptool's format): which addresses its segments load at, so that the
// Xtensa transform knows which words are the image's own addresses. Two layouts: 0xE9, a header and
// segments of (address, length, bytes); 0xEA ("v2"), the irom0 text first (mapped at 0x40201010 when
// the image is flashed at 0x1000, as the ESP8266 SDKs place it), then an 0xE9 image.

export interface AddressRange {
  start: number;
  end: number;
}

export interface Esp8266Layout {
  /** The addresses the segments load at. */
  ranges: AddressRange[];
  /** Address - file offset of the first code segment (irom0, else the first in IRAM): where CALL0s run. */
  origin: number;
}

const IROM_MAPPED_AT = 0x4020_1010;
const IRAM = { start: 0x4010_0000, end: 0x4014_0000 };

function segments(b: Uint8Array, at: number, out: AddressRange[], offsets: number[]): boolean {
  if (at + 8 > b.length || b[at] !== 0xe9) return false;
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  const count = b[at + 1];
  if (count === 0 || count > 16) return false;
  let p = at + 8;
  for (let k = 0; k < count; k++) {
    if (p + 8 > b.length) return false;
    const addr = v.getUint32(p, true);
    const len = v.getUint32(p + 4, true);
    if (len > b.length - p - 8 || addr + len > 2 ** 32) return false;
    out.push({ start: addr, end: addr + len });
    offsets.push(p + 8);
    p += 8 + len;
  }
  return true;
}

/** The layout of an ESP8266 application image, or null when `b` is no such image. */
export function esp8266Layout(b: Uint8Array): Esp8266Layout | null {
  const ranges: AddressRange[] = [];
  const offsets: number[] = [];
  const irom0First = b.length >= 16 && b[0] === 0xea;
  let at = 0;
  if (irom0First) {
    const irom = new DataView(b.buffer, b.byteOffset, b.length).getUint32(12, true);
    if (irom > b.length - 16) return null;
    ranges.push({ start: IROM_MAPPED_AT, end: IROM_MAPPED_AT + irom });
    offsets.push(16);
    at = 16 + irom;
  }
  if (!segments(b, at, ranges, offsets)) return null;
  // Code runs from irom0 (first in a 0xEA image), else from the first segment in IRAM.
  const inIram = ranges.findIndex((r) => r.start >= IRAM.start && r.start < IRAM.end);
  const k = irom0First || inIram < 0 ? 0 : inIram;
  return { ranges, origin: (ranges[k].start - offsets[k]) >>> 0 };
}
