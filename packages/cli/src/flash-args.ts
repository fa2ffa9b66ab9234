// The flash a simulated device has: a named profile (--flash) or a custom geometry (--sector-size,
// --program-unit, --erased-value, --overwrite), for `powercut` and `flash init`.
import type { Command } from 'commander';
import { flashProfile, OVERWRITE_MODES, PROFILE_NAMES, type ErasedValue, type FlashProfile, type OverwriteMode } from '@otadiff/patch-apply';
import { CliError, parseSize } from './size-arg.js';

export interface FlashArgs {
  flash?: string;
  sectorSize?: string;
  programUnit?: string;
  erasedValue?: string;
  overwrite?: string;
  backupSize?: string;
}

/** Either a profile or a custom geometry (defaults: 4 KiB sectors, 1-byte unit, 0xFF, the strict simulator). */
export type FlashChoice =
  | { profile: FlashProfile; backupSize?: number }
  | { sectorSize: number; programUnit: number; erasedValue: ErasedValue; overwrite: OverwriteMode; backupSize?: number };

export function addFlashOptions(cmd: Command): Command {
  return cmd
    .option('--flash <profile>', `flash part: ${PROFILE_NAMES.join(', ')} (\`otadiff flash profiles\` lists their figures)`)
    .option('--sector-size <size>', 'custom flash: sector (erase) size (default 4K)')
    .option('--program-unit <size>', 'custom flash: program granularity, 1 to 32 bytes (default 1)')
    .option('--erased-value <byte>', 'custom flash: what an erase leaves, 0xFF or 0x00 (default 0xFF)')
    .option('--overwrite <mode>', `custom flash: a program over bytes that are not erased: ${OVERWRITE_MODES.join(', ')} (default error)`)
    .option('--backup-size <size>', 'bytes of the in-place backup ring (default: a third of the slot, at least two chunks and eight sectors)');
}

export function parseFlashArgs(o: FlashArgs): FlashChoice {
  const backupSize = o.backupSize === undefined ? undefined : parseSize(o.backupSize);
  const custom = [o.sectorSize, o.programUnit, o.erasedValue, o.overwrite].some((v) => v !== undefined);
  if (o.flash !== undefined) {
    if (custom) throw new CliError('--flash names a part with its own geometry: leave out --sector-size, --program-unit, --erased-value and --overwrite');
    try {
      return { profile: flashProfile(o.flash), backupSize };
    } catch (e) {
      throw new CliError((e as Error).message);
    }
  }
  let erasedValue: ErasedValue = 0xff;
  if (o.erasedValue !== undefined) {
    const v = o.erasedValue.toLowerCase();
    if (v === '0xff' || v === '255') erasedValue = 0xff;
    else if (v === '0x00' || v === '0' || v === '0x0') erasedValue = 0x00;
    else throw new CliError(`--erased-value must be 0xFF or 0x00, not "${o.erasedValue}"`);
  }
  const overwrite = (o.overwrite ?? 'error') as OverwriteMode;
  if (!OVERWRITE_MODES.includes(overwrite)) throw new CliError(`--overwrite must be one of ${OVERWRITE_MODES.join(', ')}`);
  return { sectorSize: parseSize(o.sectorSize ?? '4K'), programUnit: parseSize(o.programUnit ?? '1'), erasedValue, overwrite, backupSize };
}
