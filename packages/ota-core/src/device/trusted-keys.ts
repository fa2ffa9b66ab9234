// The public keys a device trusts to sign its packages: given as parsed keys, PEM text (one or several
// "PUBLIC KEY" blocks), the path of a PEM file, or SPKI DER bytes. Ed25519, EC P-256 and RSA-2048, as
// patch-apply's parsePublicKey reads them: the service and the bootloader verify with the same keys.

import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { KeyError, parsePublicKey, parsePublicKeys, type TrustedKey } from '@otadiff/patch-apply';

export type TrustedKeyInput = TrustedKey | string | Uint8Array;

export class TrustedKeyError extends Error {
  override name = 'TrustedKeyError';
}

/** True when `s` is PEM text rather than a file path. */
export const isPemText = (s: string): boolean => s.includes('-----BEGIN');

function parsePem(text: string, where: string): TrustedKey[] {
  if (!text.includes('-----BEGIN PUBLIC KEY-----'))
    throw new TrustedKeyError(`${where}: no "BEGIN PUBLIC KEY" block (a public key in PEM, e.g. from \`otadiff keygen\`)`);
  try {
    return parsePublicKeys(text);
  } catch (e) {
    if (e instanceof KeyError) throw new TrustedKeyError(`${where}: ${e.message}`);
    throw e;
  }
}

/**
 * Parses every input into the keys it holds (a PEM file may hold several). Relative paths are taken
 * from `baseDir` (default: the working directory). Throws TrustedKeyError with the culprit named.
 */
export function resolveTrustedKeys(inputs: readonly TrustedKeyInput[], baseDir = '.'): TrustedKey[] {
  const out: TrustedKey[] = [];
  for (const k of inputs) {
    if (k instanceof Uint8Array) {
      try {
        out.push(parsePublicKey(k));
      } catch (e) {
        if (e instanceof KeyError) throw new TrustedKeyError(`public key (DER): ${e.message}`);
        throw e;
      }
    } else if (typeof k === 'string') {
      if (isPemText(k)) {
        out.push(...parsePem(k, 'public key'));
        continue;
      }
      const path = isAbsolute(k) ? k : resolve(baseDir, k);
      let text: string;
      try {
        text = readFileSync(path, 'utf8');
      } catch (e) {
        throw new TrustedKeyError(`cannot read the public key ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
      }
      out.push(...parsePem(text, path));
    } else if (typeof k === 'object' && k !== null && (k.algorithm === 'ed25519' || k.algorithm === 'ecdsaP256' || k.algorithm === 'rsa2048')) {
      out.push(k);
    } else {
      throw new TrustedKeyError('a trusted key must be PEM text, a PEM file path, DER bytes or a parsed key');
    }
  }
  return out;
}
