// Checks a package's signature block and security counter on the device side. The primitives are
// well-kept pure-JS libraries (noble, micro-rsa-dsa-dh), so the boot side runs outside Node too.
import { ed25519 } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import { PKCS1_SHA256 } from 'micro-rsa-dsa-dh/rsa.js';
import { PackageError } from './package-error.js';
import { SIGNATURE_BYTES, signatureAlgorithmOf, type FixedHeader, type PackageHeader, type SignatureAlgorithm } from './package-format.js';

/** A public key the device trusts, in the form its algorithm needs. */
export type TrustedKey =
  | { readonly algorithm: 'ed25519'; readonly key: Uint8Array }
  /** Uncompressed SEC1 point (65 bytes). */
  | { readonly algorithm: 'ecdsaP256'; readonly key: Uint8Array }
  | { readonly algorithm: 'rsa2048'; readonly n: bigint; readonly e: bigint };

/** What a device requires of a package before it lets it change anything. */
export interface TrustPolicy {
  /** The package must be signed by one of these keys; an unsigned package is refused. */
  readonly keys: readonly TrustedKey[];
  /**
   * The highest security counter this device has recorded. A package with a lower one is refused
   * unless its signed header allows the downgrade.
   */
  readonly securityCounter?: number;
}

/**
 * Judges a package before anything is produced from it: `signed` is its header (the first
 * `headerLength` bytes), `signature` its signature block. Throws PackageError to refuse it.
 * The patcher takes one as a function, so a host that trusts no key never loads the crypto libraries.
 */
export type TrustCheck = (h: FixedHeader, signed: Uint8Array, signature: Uint8Array) => void;

/** The TrustCheck of a policy: signed by one of its keys, security counter acceptable (checkTrust). */
export function trustCheck(policy: TrustPolicy): TrustCheck {
  return (h, signed, signature) => checkTrust(h, signed, signature, policy);
}

/** True when `signature` over `signed` verifies with `key` (a key of another algorithm never does). */
export function verifyWith(key: TrustedKey, algorithm: SignatureAlgorithm, signed: Uint8Array, signature: Uint8Array): boolean {
  if (key.algorithm !== algorithm || signature.length !== SIGNATURE_BYTES[algorithm]) return false;
  try {
    switch (key.algorithm) {
      case 'ed25519':
        return ed25519.verify(signature, signed, key.key);
      case 'ecdsaP256':
        // ECDSA over SHA-256(signed); both s and n - s are valid (OpenSSL does not normalise s).
        return p256.verify(signature, signed, key.key, { lowS: false });
      case 'rsa2048':
        return PKCS1_SHA256.verify({ n: key.n, e: key.e }, signed, signature);
    }
  } catch {
    // The libraries throw on malformed points or lengths: that is a signature that does not verify.
    return false;
  }
}

/**
 * Throws PackageError unless the signature block verifies with one of the policy's keys and the
 * security counter is acceptable. `signed` is the package's first `headerLength` bytes.
 */
export function checkTrust(h: Pick<PackageHeader, 'headerLength' | 'signatureType' | 'securityCounter' | 'allowDowngrade'>, signed: Uint8Array, signature: Uint8Array, policy: TrustPolicy): void {
  if (signed.length !== h.headerLength) throw new RangeError('checkTrust: signed bytes must be exactly the header');
  const algorithm = signatureAlgorithmOf(h.signatureType);
  if (algorithm === null) throw new PackageError('unsigned', 'the package is not signed, and this device requires a signature');
  if (!policy.keys.some((k) => verifyWith(k, algorithm, signed, signature)))
    throw new PackageError('bad-signature', `the package's ${algorithm} signature does not verify with any trusted key`);
  checkSecurityCounter(h, policy.securityCounter);
}

/** Anti-rollback: a package below the recorded counter needs the owner's signed permission. */
export function checkSecurityCounter(h: Pick<PackageHeader, 'securityCounter' | 'allowDowngrade'>, recorded: number | undefined): void {
  if (recorded === undefined || h.securityCounter >= recorded || h.allowDowngrade) return;
  throw new PackageError(
    'security-counter',
    `the package's security counter ${h.securityCounter} is below the ${recorded} this device has recorded (rollback refused)`,
  );
}
