import { KeyError, parsePublicKeys, type TrustedKey } from '@otadiff/patch-apply';
import { readInput } from './files.js';
import { CliError } from './size-arg.js';

/** Reads PEM public keys (a file may hold several) for the patcher's and the bootloader's trust policy. */
export function loadTrustedKeys(paths: readonly string[]): TrustedKey[] {
  return paths.flatMap((p) => {
    try {
      return parsePublicKeys(new TextDecoder().decode(readInput(p, 'public key')));
    } catch (e) {
      if (e instanceof KeyError) throw new CliError(`${p}: ${e.message}`);
      throw e;
    }
  });
}
