// The Xtensa (ESP8266) transform: the address words of the image (the literal pools L32R loads, tables
// of pointers), carried through the label map on the OLD side. Branches and calls are left as they are,
// so the NEW side is the identity (docs/FORMAT.md, "Transform section").
import { mapLabel, type Prediction } from './label-map.js';
import { checkOffset } from './thumb2.js';

/** `word(w, x)` for each aligned 32-bit word at buf[w] (buf at image offset `offset`) holding base + x, x < span. */
export function forEachAddressWord(buf: Uint8Array, len: number, offset: number, base: number, span: number, word: (w: number, x: number) => void): void {
  checkOffset(offset);
  for (let w = 0; w + 4 <= len; w += 4) {
    const x = ((buf[w] | (buf[w + 1] << 8) | (buf[w + 2] << 16) | (buf[w + 3] << 24)) - base) >>> 0;
    // A word is decided on its own bytes alone, so rewriting it never changes another's decision.
    if (x < span) word(w, x);
  }
}

export function predictAddressWords(buf: Uint8Array, len: number, offset: number, p: Prediction): void {
  const { map, base } = p;
  forEachAddressWord(buf, len, offset, base, p.span, (w, x) => {
    const u = (base + mapLabel(map, x)) >>> 0;
    buf[w] = u & 0xff;
    buf[w + 1] = (u >>> 8) & 0xff;
    buf[w + 2] = (u >>> 16) & 0xff;
    buf[w + 3] = u >>> 24;
  });
}
