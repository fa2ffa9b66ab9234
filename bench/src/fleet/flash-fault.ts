// The fault a failing device of the fleet bench has: a few bytes of its OTA partition stuck at 0
// (NOR programming only clears bits, so a worn cell reads 0 whatever was written). The download
// itself is fine; the device's check of what its flash holds against the notice's SHA-256 fails,
// and it reports a verify failure (-3) as a real device does. The simulated devices apply the
// fault to the bytes they would have written; the restore sample's real OTA service gets a flash
// whose programs are stuck there.

import type { Flash } from '@otadiff/patch-apply';

/** Offset in the OTA partition (past the package's signed head, which a device fetches first: 1 KiB) and length of the stuck bytes. */
export const STUCK_OFFSET = 2048;
export const STUCK_BYTES = 16;

/** `bytes` as programmed at `offset` of the OTA partition reads back: the stuck bytes 0 (a copy when they overlap). */
export function withStuckBytes(offset: number, bytes: Uint8Array): Uint8Array {
  const from = Math.max(STUCK_OFFSET, offset);
  const to = Math.min(STUCK_OFFSET + STUCK_BYTES, offset + bytes.length);
  if (from >= to) return bytes;
  const out = bytes.slice();
  out.fill(0, from - offset, to - offset);
  return out;
}

/** `flash` with the stuck bytes in the OTA partition starting at `otaStart()` (known once the port is open). */
export function stuckOtaFlash(flash: Flash, otaStart: () => number | undefined): Flash {
  return {
    geometry: flash.geometry,
    ...(flash.onOverwrite === undefined ? {} : { onOverwrite: flash.onOverwrite }),
    read: (offset, dst, dstOffset, length) => flash.read(offset, dst, dstOffset, length),
    program: (offset, data) => {
      const base = otaStart();
      flash.program(offset, base === undefined ? data : withStuckBytes(offset - base, data));
    },
    erase: (sector) => flash.erase(sector),
  };
}
