// Which transform a pair gets, and over which addresses: Thumb-2 for Cortex-M code (load address given,
// else read off the vector table), Xtensa for ESP8266 application images (their segments' addresses).
import { forEachThumb2Reference, MAX_LABEL_SPAN, type TransformKind } from '@otadiff/patch-apply';
import { esp8266Layout } from './esp8266-image.js';
import { guessLoadAddress } from './load-address.js';
import type { TransformPlan } from './transform-pass.js';

export type TransformChoice = 'auto' | 'none' | TransformKind;
export const TRANSFORM_CHOICES: readonly TransformChoice[] = ['auto', 'none', 'thumb2', 'xtensa'];

/**
 * Whether an image looks like Thumb-2 code: branch sites landing inside it at a rate far above what
 * random bytes give (about one in 8 KiB; Thumb code has dozens per KiB).
 */
export function looksLikeThumb2(image: Uint8Array): boolean {
  let inside = 0;
  forEachThumb2Reference(image, image.length, 0, { base: 0, span: 0, origin: 0 }, (_s, target) => {
    if (target >= 0 && target < image.length) inside++;
  }, () => {});
  return inside >= 64 && inside >= image.length / 1024;
}

/** Labels from `base` on: `length` of them, within the 32-bit addresses and the format's MAX_LABEL_SPAN. */
function spanFrom(base: number, length: number): number {
  return Math.min(Math.max(length, 1), 2 ** 32 - base, MAX_LABEL_SPAN);
}

/** Thumb-2: the image's own addresses are [load address, + the larger image); labels are image offsets. */
function thumb2Plan(oldImage: Uint8Array, newImage: Uint8Array, base: number | undefined): TransformPlan {
  const at = base ?? guessLoadAddress(oldImage);
  return { kind: 'thumb2', base: at, span: spanFrom(at, Math.max(oldImage.length, newImage.length)), origin: at };
}

/**
 * Xtensa: every address OLD's or NEW's segments load at (one range from the lowest to the highest, cut
 * at 2^31 addresses), and OLD's code origin; a flat image (no ESP8266 header) is taken as loaded at
 * `base` (default 0).
 */
function xtensaPlan(oldImage: Uint8Array, newImage: Uint8Array, base: number | undefined): TransformPlan {
  const layouts = [esp8266Layout(oldImage), esp8266Layout(newImage)];
  if (layouts[0] === null || layouts[1] === null) {
    const at = base ?? 0;
    return { kind: 'xtensa', base: at, span: spanFrom(at, Math.max(oldImage.length, newImage.length)), origin: at };
  }
  const all = [...layouts[0].ranges, ...layouts[1].ranges];
  const start = Math.min(...all.map((r) => r.start));
  const end = Math.max(...all.map((r) => r.end));
  return { kind: 'xtensa', base: start, span: spanFrom(start, end - start), origin: layouts[0].origin };
}

/** The transform to try for `choice` (null: none). `base` is the user's load address (Thumb-2, or a flat Xtensa image). */
export function planTransform(oldImage: Uint8Array, newImage: Uint8Array, choice: TransformChoice, base?: number): TransformPlan | null {
  if (choice === 'none' || oldImage.length === 0 || newImage.length === 0) return null;
  if (choice === 'thumb2') return thumb2Plan(oldImage, newImage, base);
  if (choice === 'xtensa') return xtensaPlan(oldImage, newImage, base);
  if (looksLikeThumb2(oldImage) && looksLikeThumb2(newImage)) return thumb2Plan(oldImage, newImage, base);
  if (esp8266Layout(oldImage) !== null && esp8266Layout(newImage) !== null) return xtensaPlan(oldImage, newImage, base);
  return null;
}
