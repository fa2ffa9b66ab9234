// The ESP8266 application image (esptool's format): which addresses its segments load at, so that the
// Xtensa transform knows which words are the image's own addresses. Two layouts: 0xE9, a header and
// segments of (address, length, bytes); 0xEA ("v2"), the irom0 text first (mapped at 0x40201010 when
// the image is flashed at 0x1000, as the ESP8266 SDKs place it), then an 0xE9 image.

export interface AddressRange {
  start: number;
  end: number;
}

const IROM_MAPPED_AT = 0x4020_1010;

function segments(b: Uint8Array, at: number, out: AddressRange[]): boolean {
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
    p += 8 + len;
  }
  return true;
}

/** The address ranges an ESP8266 image loads, or null when `b` is no such image. */
export function esp8266Ranges(b: Uint8Array): AddressRange[] | null {
  const out: AddressRange[] = [];
  if (b.length >= 16 && b[0] === 0xea) {
    const irom = new DataView(b.buffer, b.byteOffset, b.length).getUint32(12, true);
    if (irom > b.length - 16) return null;
    out.push({ start: IROM_MAPPED_AT, end: IROM_MAPPED_AT + irom });
    return segments(b, 16 + irom, out) ? out : null;
  }
  return segments(b, 0, out) ? out : null;
}
