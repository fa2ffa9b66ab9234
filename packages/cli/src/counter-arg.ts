// `--security-counter N`, as `diff`, `pack`, `verify` and `add-firmware` take it.
import { CliError } from './size-arg.js';

/** A decimal anti-rollback counter: an integer from 0 to 2^32 - 1. */
export function parseSecurityCounter(s: string): number {
  if (!/^\d+$/.test(s) || Number(s) > 0xffff_ffff) throw new CliError('--security-counter must be an integer from 0 to 4294967295');
  return Number(s);
}
