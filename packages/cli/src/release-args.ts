// The release options shared by `diff` and `pack`: what the owner signs into the header.
import type { ReleaseOptions } from '@otadiff/diff-gen';
import { loadSigningKey } from './commands/keys.js';
import { parseSecurityCounter } from './counter-arg.js';
import { CliError } from './size-arg.js';

export interface ReleaseArgs {
  sign?: string;
  fwVersion?: string;
  securityCounter?: string;
  allowDowngrade?: boolean;
}

export function releaseOptions(a: ReleaseArgs): ReleaseOptions {
  const securityCounter = a.securityCounter === undefined ? undefined : parseSecurityCounter(a.securityCounter);
  if (a.fwVersion !== undefined && !/^[\x20-\x7e]{0,32}$/.test(a.fwVersion)) throw new CliError('--fw-version must be at most 32 printable ASCII characters');
  return {
    firmwareVersion: a.fwVersion,
    securityCounter,
    allowDowngrade: a.allowDowngrade ?? false,
    signingKey: a.sign === undefined ? undefined : loadSigningKey(a.sign),
  };
}
