// Where a flat Cortex-M image is loaded, when neither the user (--base) nor an Intel HEX file said: the
// address words of the image only make sense against it. A Cortex-M image starts with its vector table,
// whose second word is the reset handler's address (odd: Thumb); the image lies in the naturally aligned
// region around it. The guess is kept only if it explains the image's code pointers better than 0 does.
import { forEachThumb2Reference } from '@otadiff/patch-apply';

/** Thumb function pointers (odd words) in `image` under `base` that point at the target of some branch. */
function codePointers(image: Uint8Array, base: number, targets: Set<number>): number {
  let n = 0;
  forEachThumb2Reference(
    image,
    image.length,
    0,
    { base, span: image.length, origin: base },
    () => {},
    (_w, x) => {
      if ((x & 1) === 1 && targets.has(x - 1)) n++;
    },
  );
  return n;
}

export function guessLoadAddress(image: Uint8Array): number {
  if (image.length < 8) return 0;
  const reset = (image[4] | (image[5] << 8) | (image[6] << 16) | (image[7] << 24)) >>> 0;
  let region = 1;
  while (region < image.length) region *= 2;
  const guess = reset - (reset % region);
  if (guess === 0 || (reset & 1) === 0) return 0;
  const targets = new Set<number>();
  forEachThumb2Reference(image, image.length, 0, { base: 0, span: 0, origin: 0 }, (_s, t) => targets.add(t), () => {});
  return codePointers(image, guess, targets) > codePointers(image, 0, targets) ? guess : 0;
}
