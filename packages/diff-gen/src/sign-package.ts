// Host side of signing: keys through node:crypto, and the assembly of header + signature + records.
// The device side (patch-apply/src/signature.ts) verifies with pure-JS primitives.
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign as cryptoSign, type KeyObject } from 'node:crypto';
import {
  DEFAULT_LIMITS,
  encodeHeader,
  packageLength,
  parseHeader,
  parsePublicKey,
  recordsOffset,
  SIGNATURE_BYTES,
  SignatureType,
  type HeaderFields,
  type PackageHeader,
  type SignatureAlgorithm,
  type TrustedKey,
} from '@otadiff/patch-apply';

export class SigningError extends Error {
  override readonly name = 'SigningError';
}

export const KEY_TYPES = ['ed25519', 'ecdsa-p256', 'rsa-2048'] as const;
export type KeyType = (typeof KEY_TYPES)[number];

const ALGORITHM_OF: Record<KeyType, SignatureAlgorithm> = { ed25519: 'ed25519', 'ecdsa-p256': 'ecdsaP256', 'rsa-2048': 'rsa2048' };

/** A new key pair as PEM: PKCS#8 private key and SPKI public key. */
export function generateKeyPair(type: KeyType = 'ed25519'): { privateKey: string; publicKey: string } {
  const pair =
    type === 'ed25519'
      ? generateKeyPairSync('ed25519')
      : type === 'ecdsa-p256'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 65537 });
  return {
    privateKey: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKey: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/** Reads a PEM private key; throws SigningError for anything the format cannot sign with. */
export function loadPrivateKey(pem: string | Uint8Array): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: typeof pem === 'string' ? pem : Buffer.from(pem), format: 'pem' });
  } catch (e) {
    throw new SigningError(`not a usable PEM private key (${(e as Error).message})`);
  }
  algorithmOf(key);
  return key;
}

/** The signature algorithm a private key signs with: Ed25519, EC P-256 or RSA-2048. */
export function algorithmOf(key: KeyObject): SignatureAlgorithm {
  const d = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ed25519') return ALGORITHM_OF.ed25519;
  if (key.asymmetricKeyType === 'ec' && d.namedCurve === 'prime256v1') return ALGORITHM_OF['ecdsa-p256'];
  if (key.asymmetricKeyType === 'rsa' && d.modulusLength === 2048) return ALGORITHM_OF['rsa-2048'];
  throw new SigningError(`unsupported key (${key.asymmetricKeyType ?? 'unknown'}); use Ed25519, EC P-256 or RSA-2048`);
}

/** The device-side form of a private key's public half. */
export function trustedKeyOf(key: KeyObject): TrustedKey {
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  return parsePublicKey(new Uint8Array(spki));
}

function signBytes(key: KeyObject, algorithm: SignatureAlgorithm, data: Uint8Array): Uint8Array {
  // Ed25519 signs the message itself; ECDSA (raw r||s) and RSA PKCS#1 v1.5 sign its SHA-256.
  const sig =
    algorithm === 'ed25519'
      ? cryptoSign(null, data, key)
      : algorithm === 'ecdsaP256'
        ? cryptoSign('sha256', data, { key, dsaEncoding: 'ieee-p1363' })
        : cryptoSign('sha256', data, key);
  if (sig.length !== SIGNATURE_BYTES[algorithm]) throw new SigningError(`${algorithm} signature of ${sig.length} bytes, expected ${SIGNATURE_BYTES[algorithm]}`);
  return new Uint8Array(sig);
}

export function headerFieldsOf(h: PackageHeader): HeaderFields {
  const { headerLength: _l, diffVersion: _v, payloadLength: _p, ...fields } = h;
  return fields;
}

/**
 * Lays out a package: the signed header (with the signature type and length of `key`, or none),
 * the signature block over it, then the records.
 */
export function assemblePackage(fields: HeaderFields, records: readonly Uint8Array[], key?: KeyObject): Uint8Array {
  const algorithm = key === undefined ? null : algorithmOf(key);
  const header = encodeHeader({
    ...fields,
    signatureType: algorithm === null ? SignatureType.none : SignatureType[algorithm],
    signatureLength: algorithm === null ? 0 : SIGNATURE_BYTES[algorithm],
  });
  const signature = algorithm === null ? new Uint8Array(0) : signBytes(key!, algorithm, header);
  let total = header.length + signature.length;
  for (const r of records) total += r.length;
  const out = new Uint8Array(total);
  out.set(header, 0);
  out.set(signature, header.length);
  let at = header.length + signature.length;
  for (const r of records) {
    out.set(r, at);
    at += r.length;
  }
  return out;
}

/** Signs (or re-signs) a finished package, e.g. on an offline signing machine. The records are kept as they are. */
export function signPackage(pkg: Uint8Array, key: KeyObject): Uint8Array {
  const h = parseHeader(pkg, { ...DEFAULT_LIMITS, maxDictSize: 1 << 28 });
  if (pkg.length !== packageLength(h)) throw new SigningError(`the package is ${pkg.length} bytes, its header declares ${packageLength(h)}`);
  return assemblePackage(headerFieldsOf(h), [pkg.subarray(recordsOffset(h))], key);
}
