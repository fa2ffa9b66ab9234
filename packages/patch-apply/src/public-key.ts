// Reads a SubjectPublicKeyInfo (PEM "PUBLIC KEY" or DER) into a TrustedKey. Only the three key kinds the
// format signs with are accepted: Ed25519, EC P-256, RSA-2048. Pure TypeScript, a DER subset.
import type { TrustedKey } from './signature.js';

export class KeyError extends Error {
  override readonly name = 'KeyError';
}

const OID_ED25519 = '2b6570';
const OID_EC_PUBLIC_KEY = '2a8648ce3d0201';
const OID_P256 = '2a8648ce3d030107';
const OID_RSA = '2a864886f70d010101';

interface Tlv {
  tag: number;
  body: Uint8Array;
  /** Offset just past this element. */
  end: number;
}

function readTlv(buf: Uint8Array, at: number): Tlv {
  if (at + 2 > buf.length) throw new KeyError('truncated DER');
  const tag = buf[at];
  let len = buf[at + 1];
  let pos = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 3 || pos + n > buf.length) throw new KeyError('bad DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[pos + i];
    pos += n;
  }
  if (pos + len > buf.length) throw new KeyError('truncated DER');
  return { tag, body: buf.subarray(pos, pos + len), end: pos + len };
}

/** The elements of a constructed body, which must be exactly filled. */
function children(body: Uint8Array): Tlv[] {
  const out: Tlv[] = [];
  for (let at = 0; at < body.length; ) {
    const t = readTlv(body, at);
    out.push(t);
    at = t.end;
  }
  return out;
}

function expect(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (t === undefined || t.tag !== tag) throw new KeyError(`expected ${what}`);
  return t;
}

const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

function bitString(t: Tlv): Uint8Array {
  expect(t, 0x03, 'a BIT STRING');
  if (t.body.length < 1 || t.body[0] !== 0) throw new KeyError('public key BIT STRING has unused bits');
  return t.body.subarray(1);
}

function positiveInteger(t: Tlv | undefined, what: string): bigint {
  const body = expect(t, 0x02, what).body;
  if (body.length === 0 || body[0] & 0x80) throw new KeyError(`${what} is not a positive integer`);
  return BigInt('0x' + hex(body));
}

const PEM_BLOCK = /-----BEGIN PUBLIC KEY-----([A-Za-z0-9+/=\s]+)-----END PUBLIC KEY-----/g;
const NO_PEM = 'not a PEM public key (expected a "BEGIN PUBLIC KEY" block)';

/** Bytes of one PEM block's base64 body. */
function pemBody(body: string): Uint8Array {
  const b64 = body.replace(/\s+/g, '');
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Parses a public key from PEM text or SPKI DER bytes. */
export function parsePublicKey(input: string | Uint8Array): TrustedKey {
  if (typeof input !== 'string') return parseSpki(input);
  const m = new RegExp(PEM_BLOCK.source).exec(input);
  if (m === null) throw new KeyError(NO_PEM);
  return parseSpki(pemBody(m[1]));
}

/** Every "PUBLIC KEY" block of a PEM text (a key file may hold several); at least one. */
export function parsePublicKeys(pem: string): TrustedKey[] {
  const keys = Array.from(pem.matchAll(PEM_BLOCK), (m) => parseSpki(pemBody(m[1])));
  if (keys.length === 0) throw new KeyError(NO_PEM);
  return keys;
}

function parseSpki(der: Uint8Array): TrustedKey {
  const top = readTlv(der, 0);
  if (top.end !== der.length) throw new KeyError('trailing bytes after the public key');
  const [alg, key, ...rest] = children(expect(top, 0x30, 'a SubjectPublicKeyInfo SEQUENCE').body);
  if (rest.length > 0 || key === undefined) throw new KeyError('a SubjectPublicKeyInfo has two elements');
  const [oid, params] = children(expect(alg, 0x30, 'an AlgorithmIdentifier').body);
  const algOid = hex(expect(oid, 0x06, 'an algorithm OID').body);
  const bits = bitString(key);
  if (algOid === OID_ED25519) {
    if (params !== undefined) throw new KeyError('Ed25519 keys have no parameters');
    if (bits.length !== 32) throw new KeyError('an Ed25519 key is 32 bytes');
    return { algorithm: 'ed25519', key: bits.slice() };
  }
  if (algOid === OID_EC_PUBLIC_KEY) {
    if (params === undefined || params.tag !== 0x06 || hex(params.body) !== OID_P256) throw new KeyError('only the P-256 curve is supported');
    if (bits.length !== 65 || bits[0] !== 0x04) throw new KeyError('a P-256 key must be an uncompressed 65-byte point');
    return { algorithm: 'ecdsaP256', key: bits.slice() };
  }
  if (algOid === OID_RSA) {
    const [n, e, ...more] = children(expect(readTlv(bits, 0), 0x30, 'an RSAPublicKey SEQUENCE').body);
    if (more.length > 0) throw new KeyError('an RSAPublicKey has two integers');
    const modulus = positiveInteger(n, 'the RSA modulus');
    const exponent = positiveInteger(e, 'the RSA exponent');
    if (modulus.toString(2).length !== 2048) throw new KeyError('only RSA-2048 keys are supported');
    if (exponent < 3n || exponent % 2n === 0n) throw new KeyError('the RSA exponent must be odd and at least 3');
    return { algorithm: 'rsa2048', n: modulus, e: exponent };
  }
  throw new KeyError('unsupported key algorithm (expected Ed25519, EC P-256 or RSA-2048)');
}
