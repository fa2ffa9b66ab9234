import { KeyError, parsePublicKey, type TrustedKey } from '@otadiff/patch-apply';
import { readInput } from './files.js';
import { CliError } from './size-arg.js';

/** Reads PEM public keys (one per file) for the patcher's and the bootloader's trust policy. */
export function loadTrustedKeys(paths: readonly string[]): TrustedKey[] {
  return paths.map((p) => {
    try {
      return parsePublicKey(new TextDecoder().decode(readInput(p, 'public key')));
    } catch (e) {
      if (e instanceof KeyError) throw new CliError(`${p}: ${e.message}`);
      throw e;
    }
  });
}
