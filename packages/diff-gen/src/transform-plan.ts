// Which transform a pair gets, and over which addresses: Thumb-2 for Cortex-M code (load address given,
// else read off the vector table), Xtensa for ESP8266 application images (their segments' addresses).
import { forEachThumb2Reference, type TransformKind } from '@otadiff/patch-apply';
import { esp8266Ranges } from './esp8266-image.js';
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
  forEachThumb2Reference(image, image.length, 0, 0, 0, (_s, target) => {
    if (target >= 0 && target < image.length) inside++;
  }, () => {});
  return inside >= 64 && inside >= image.length / 1024;
}

function thumb2Plan(oldImage: Uint8Array, newImage: Uint8Array, base: number | undefined): TransformPlan {
  return { kind: 'thumb2', base: base ?? guessLoadAddress(oldImage), span: Math.max(oldImage.length, newImage.length, 1) };
}

/** Xtensa: every address OLD's or NEW's segments load at (one range from the lowest to the highest). */
function xtensaPlan(oldImage: Uint8Array, newImage: Uint8Array, base: number | undefined): TransformPlan {
  const ranges = [esp8266Ranges(oldImage), esp8266Ranges(newImage)];
  if (ranges[0] === null || ranges[1] === null) return { kind: 'xtensa', base: base ?? 0, span: Math.max(oldImage.length, newImage.length, 1) };
  const all = [...ranges[0], ...ranges[1]];
  const start = Math.min(...all.map((r) => r.start));
  const end = Math.max(...all.map((r) => r.end));
  return { kind: 'xtensa', base: start, span: Math.max(1, end - start) };
}

/** The transform to try for `choice` (null: none). `base` is the user's load address (Thumb-2, or a flat Xtensa image). */
export function planTransform(oldImage: Uint8Array, newImage: Uint8Array, choice: TransformChoice, base?: number): TransformPlan | null {
  if (choice === 'none' || oldImage.length === 0 || newImage.length === 0) return null;
  if (choice === 'thumb2') return thumb2Plan(oldImage, newImage, base);
  if (choice === 'xtensa') return xtensaPlan(oldImage, newImage, base);
  if (looksLikeThumb2(oldImage) && looksLikeThumb2(newImage)) return thumb2Plan(oldImage, newImage, base);
  if (esp8266Ranges(oldImage) !== null && esp8266Ranges(newImage) !== null) return xtensaPlan(oldImage, newImage, base);
  return null;
}
