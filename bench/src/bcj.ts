// A plain branch converter before bsdiff, the xz ARM-Thumb BCJ idea: every BL's offset becomes its
// absolute target (in halfwords), everywhere in the image, with no label map. The bench's "BCJ +
// bsdiff" column: what a cheap pre-filter gives a plain bsdiff, beside what the transform gives ours.

/** BL sites as xz's filter finds them: halfwords 11110xxx xxxxxxxx / 11111xxx xxxxxxxx, scanned left to right. */
function convert(img: Uint8Array, encode: boolean): Uint8Array {
  const out = img.slice();
  for (let i = 0; i + 4 <= out.length; i += 2) {
    if ((out[i + 1] & 0xf8) !== 0xf0 || (out[i + 3] & 0xf8) !== 0xf8) continue;
    const field = ((out[i + 1] & 7) << 19) | (out[i] << 11) | ((out[i + 3] & 7) << 8) | out[i + 2];
    const here = (i + 4) >>> 1;
    const v = (encode ? field + here : field - here) & 0x3f_ffff;
    out[i + 1] = 0xf0 | (v >>> 19);
    out[i] = (v >>> 11) & 0xff;
    out[i + 3] = 0xf8 | ((v >>> 8) & 7);
    out[i + 2] = v & 0xff;
    i += 2;
  }
  return out;
}

export const bcjEncode = (img: Uint8Array): Uint8Array => convert(img, true);
export const bcjDecode = (img: Uint8Array): Uint8Array => convert(img, false);
