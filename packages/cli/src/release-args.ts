// The release options shared by `diff` and `pack`: what the owner signs into the header.
import type { ReleaseOptions } from '@otadiff/diff-gen';
import { loadSigningKey } from './commands/keys.js';
import { CliError } from './size-arg.js';

export interface ReleaseArgs {
  sign?: string;
  fwVersion?: string;
  securityCounter?: string;
  allowDowngrade?: boolean;
}

export function releaseOptions(a: ReleaseArgs): ReleaseOptions {
  let securityCounter: number | undefined;
  if (a.securityCounter !== undefined) {
    if (!/^\d+$/.test(a.securityCounter) || Number(a.securityCounter) > 0xffff_ffff)
      throw new CliError('--security-counter must be an integer from 0 to 4294967295');
    securityCounter = Number(a.securityCounter);
  }
  if (a.fwVersion !== undefined && !/^[\x20-\x7e]{0,32}$/.test(a.fwVersion)) throw new CliError('--fw-version must be at most 32 printable ASCII characters');
  return {
    firmwareVersion: a.fwVersion,
    securityCounter,
    allowDowngrade: a.allowDowngrade ?? false,
    signingKey: a.sign === undefined ? undefined : loadSigningKey(a.sign),
  };
}
