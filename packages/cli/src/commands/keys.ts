// Signing keys and signatures: keygen, sign (on an offline machine), verify.
import { existsSync } from 'node:fs';
import { generateKeyPair, KEY_TYPES, loadPrivateKey, signPackage, SigningError, type KeyType } from '@otadiff/diff-gen';
import {
  applyPackage,
  checkTrust,
  DEFAULT_LIMITS,
  nodeCrc32,
  trustCheck,
  nodeSha256,
  packageLength,
  parseHeader,
  recordsOffset,
  signatureAlgorithmOf,
  PackageError,
} from '@otadiff/patch-apply';
import type { KeyObject } from 'node:crypto';
import { readInput, writeOutputAtomic } from '../files.js';
import { loadTrustedKeys } from '../trusted-keys.js';
import { parseSecurityCounter } from '../counter-arg.js';
import { CliError } from '../size-arg.js';

export function loadSigningKey(path: string): KeyObject {
  try {
    return loadPrivateKey(readInput(path, 'signing key'));
  } catch (e) {
    if (e instanceof SigningError) throw new CliError(`${path}: ${e.message}`);
    throw e;
  }
}

export function keygenCommand(opts: { output: string; type: string; force?: boolean; json?: boolean }): void {
  if (!(KEY_TYPES as readonly string[]).includes(opts.type)) throw new CliError(`--type must be one of ${KEY_TYPES.join(', ')}, not "${opts.type}"`);
  const pubPath = `${opts.output}.pub`;
  // A signing key is the one file that must never be overwritten by accident.
  for (const p of [opts.output, pubPath]) if (existsSync(p) && !opts.force) throw new CliError(`${p} exists; pass --force to replace it`);
  const { privateKey, publicKey } = generateKeyPair(opts.type as KeyType);
  writeOutputAtomic(opts.output, new TextEncoder().encode(privateKey), 0o600);
  writeOutputAtomic(pubPath, new TextEncoder().encode(publicKey));
  if (opts.json) process.stdout.write(`${JSON.stringify({ privateKey: opts.output, publicKey: pubPath, type: opts.type })}\n`);
  else process.stdout.write(`${opts.type} key pair: ${opts.output} (private, keep it offline), ${pubPath} (public, for devices)\n`);
}

export function signCommand(patchPath: string, opts: { key: string; output?: string; json?: boolean }): void {
  const key = loadSigningKey(opts.key);
  const pkg = readInput(patchPath, 'PATCH');
  const signed = signPackage(pkg, key);
  const out = opts.output ?? patchPath;
  writeOutputAtomic(out, signed);
  const h = parseHeader(signed, { ...DEFAULT_LIMITS, maxDictSize: 1 << 28 });
  const summary = { output: out, algorithm: signatureAlgorithmOf(h.signatureType), signatureBytes: h.signatureLength, packageBytes: signed.length };
  if (opts.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else process.stdout.write(`${out}: signed with ${summary.algorithm} (${summary.signatureBytes}-byte signature, ${summary.packageBytes} bytes)\n`);
}

export interface VerifyOptions {
  pubkey: string[];
  old?: string;
  securityCounter?: string;
  json?: boolean;
}

/**
 * Checks the signature over the header, the payload SHA-256 and every header field; with --old, also
 * restores NEW in memory and checks every chunk CRC and NEW's SHA-256.
 */
export function verifyCommand(patchPath: string, opts: VerifyOptions): void {
  const keys = loadTrustedKeys(opts.pubkey);
  const recorded = opts.securityCounter === undefined ? undefined : parseSecurityCounter(opts.securityCounter);
  const pkg = readInput(patchPath, 'PATCH');
  const limits = { ...DEFAULT_LIMITS, maxDictSize: 1 << 28 };
  const h = parseHeader(pkg, limits);
  if (pkg.length !== packageLength(h)) throw new PackageError('truncated', `the file is ${pkg.length} bytes, the header declares ${packageLength(h)}`);
  checkTrust(h, pkg.subarray(0, h.headerLength), pkg.subarray(h.headerLength, recordsOffset(h)), { keys, securityCounter: recorded });
  const payload = nodeSha256();
  payload.update(pkg.subarray(recordsOffset(h)));
  if (Buffer.compare(payload.digest(), h.payloadSha256) !== 0) throw new PackageError('payload-mismatch', 'the records do not match the payload SHA-256 of the signed header');
  let restored = false;
  if (opts.old !== undefined || h.mode === 'raw') {
    const old = opts.old === undefined ? new Uint8Array(0) : readInput(opts.old, 'OLD');
    applyPackage(old, pkg, { limits, sha256: nodeSha256, crc32: nodeCrc32, trust: trustCheck({ keys, securityCounter: recorded }) });
    restored = true;
  }
  const summary = {
    ok: true,
    algorithm: signatureAlgorithmOf(h.signatureType),
    mode: h.mode,
    firmwareVersion: h.firmwareVersion,
    securityCounter: h.securityCounter,
    allowDowngrade: h.allowDowngrade,
    restored,
  };
  if (opts.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else
    process.stdout.write(
      `${patchPath}: good ${summary.algorithm} signature; ${h.mode} package of version "${h.firmwareVersion}", security counter ${h.securityCounter}` +
        `${h.allowDowngrade ? ' (downgrade allowed)' : ''}; payload hash ok${restored ? '; NEW restored and verified' : ' (pass --old to restore NEW too)'}\n`,
    );
}
