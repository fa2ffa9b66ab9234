// Integrity and authenticity of a downloaded package, as AliOS Things checks it:
//  - `sign`: hex SHA-256 or MD5 of the whole file (per `signMethod`);
//  - `digestsign` (optional): base64 RSA PKCS#1 v1.5 signature with SHA-256
//    over the *binary* file digest (AliOS ota_verify_download_rsa_sign hashes
//    the 16/32 digest bytes again with SHA-256 and verifies, key >= 2048 bits).

import { createHash, createPublicKey, KeyObject, sign as rsaSign, timingSafeEqual, verify as rsaVerify, type KeyLike } from 'node:crypto';
import type { SignMethod, UpgradeInfo } from './messages.js';

export class SignatureError extends Error {
  override name = 'SignatureError';
  constructor(
    readonly code: 'SIGN_MISMATCH' | 'SIZE_MISMATCH' | 'DIGESTSIGN_INVALID' | 'DIGESTSIGN_MISSING' | 'BAD_KEY' | 'BAD_INPUT',
    message: string,
  ) {
    super(message);
  }
}

const HEX_LEN: Record<SignMethod, number> = { SHA256: 64, Md5: 32 };
const MIN_RSA_BITS = 2048;

export const hashAlgorithmOf = (m: SignMethod): 'sha256' | 'md5' => (m === 'SHA256' ? 'sha256' : 'md5');

/** Hex digest of `bytes` with `method` (for the cloud side and small files). */
export function fileDigest(bytes: Uint8Array, method: SignMethod): string {
  return createHash(hashAlgorithmOf(method)).update(bytes).digest('hex');
}

function checkHex(hex: string, method: SignMethod, what: string): Buffer {
  if (typeof hex !== 'string' || hex.length !== HEX_LEN[method] || !/^[0-9a-fA-F]+$/.test(hex)) {
    throw new SignatureError('BAD_INPUT', `${what} is not a ${method} hex digest`);
  }
  return Buffer.from(hex, 'hex');
}

/** Constant-time comparison of the computed digest against the message's `sign`. */
export function verifySign(method: SignMethod, computedHex: string, sign: string): void {
  const a = checkHex(computedHex, method, 'computed digest');
  const b = checkHex(sign, method, 'sign');
  if (!timingSafeEqual(a, b)) throw new SignatureError('SIGN_MISMATCH', `${method} of the file does not match sign`);
}

function rsaKey(key: KeyLike): KeyObject {
  let k: KeyObject;
  try {
    k = key instanceof KeyObject && key.type === 'public' ? key : createPublicKey(key);
  } catch (e) {
    throw new SignatureError('BAD_KEY', `not a public key: ${(e as Error).message}`);
  }
  const bits = k.asymmetricKeyDetails?.modulusLength ?? 0;
  if (k.asymmetricKeyType !== 'rsa' || bits < MIN_RSA_BITS) throw new SignatureError('BAD_KEY', `need an RSA key of >= ${MIN_RSA_BITS} bits`);
  return k;
}

/** Verify `digestsign` over the binary digest `digestHex`; throws SignatureError. */
export function verifyDigestSign(method: SignMethod, digestHex: string, digestsign: string, publicKey: KeyLike): void {
  const digest = checkHex(digestHex, method, 'digest');
  if (typeof digestsign !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(digestsign) || digestsign.length % 4 !== 0) {
    throw new SignatureError('DIGESTSIGN_INVALID', 'digestsign is not base64');
  }
  const key = rsaKey(publicKey);
  const sig = Buffer.from(digestsign, 'base64');
  const bytes = (key.asymmetricKeyDetails?.modulusLength ?? 0) / 8;
  if (sig.length !== bytes) throw new SignatureError('DIGESTSIGN_INVALID', `signature is ${sig.length} bytes, key needs ${bytes}`);
  let ok = false;
  try {
    ok = rsaVerify('sha256', digest, key, sig);
  } catch {
    ok = false;
  }
  if (!ok) throw new SignatureError('DIGESTSIGN_INVALID', 'RSA digestsign does not verify');
}

/** Cloud side: produce `digestsign` for a file digest with an RSA private key. */
export function createDigestSign(method: SignMethod, digestHex: string, privateKey: KeyLike): string {
  const digest = checkHex(digestHex, method, 'digest');
  return rsaSign('sha256', digest, privateKey).toString('base64');
}

export interface PackageVerifyOptions {
  /** Required to check digestsign; without it a present digestsign cannot be trusted. */
  publicKey?: KeyLike;
  /** Reject packages that carry no digestsign (default: true when publicKey is given). */
  requireDigestSign?: boolean;
}

/**
 * Check a downloaded package against its upgrade notice: size, `sign`, and
 * (with a key) the RSA `digestsign`.
 */
export function verifyPackage(info: UpgradeInfo, computedHex: string, size: number, opts: PackageVerifyOptions = {}): void {
  if (size !== info.size) throw new SignatureError('SIZE_MISMATCH', `package is ${size} bytes, notice says ${info.size}`);
  verifySign(info.signMethod, computedHex, info.sign);
  const requireSig = opts.requireDigestSign ?? opts.publicKey !== undefined;
  if (info.digestsign === undefined) {
    if (requireSig) throw new SignatureError('DIGESTSIGN_MISSING', 'package carries no digestsign');
    return;
  }
  if (opts.publicKey === undefined) {
    if (requireSig) throw new SignatureError('BAD_KEY', 'digestsign required but no public key configured');
    return;
  }
  verifyDigestSign(info.signMethod, computedHex, info.digestsign, opts.publicKey);
}
