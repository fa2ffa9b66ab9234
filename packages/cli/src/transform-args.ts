// `--transform` and `--base` of `otadiff diff`, checked into generatePackage's options.
import { TRANSFORM_CHOICES, type TransformChoice } from '@otadiff/diff-gen';
import { CliError } from './size-arg.js';

export interface TransformArgs {
  transform?: string;
  base?: string;
}

/** A 32-bit address as users write it: 0x08000000, 0X8000000 or 134217728. */
export function parseAddress(text: string): number {
  const t = text.trim();
  const value = /^0x[0-9a-f]{1,8}$/i.test(t) ? parseInt(t.slice(2), 16) : /^\d{1,10}$/.test(t) ? Number(t) : NaN;
  if (!Number.isInteger(value) || value > 0xffff_ffff) throw new CliError(`invalid address "${text}" (a 32-bit address, e.g. 0x08000000)`);
  return value;
}

/**
 * The transform options for generatePackage. `loadAddress` is where the input says the image lives (an
 * Intel HEX file's base); `--base` overrides it, and without either the generator reads it off the image.
 */
export function transformOptions(o: TransformArgs, loadAddress?: number): { transform: TransformChoice; base?: number } {
  const transform = (o.transform ?? 'auto') as TransformChoice;
  if (!TRANSFORM_CHOICES.includes(transform)) throw new CliError(`--transform must be ${TRANSFORM_CHOICES.join(', ')}, not "${o.transform}"`);
  return { transform, base: o.base === undefined ? loadAddress : parseAddress(o.base) };
}
