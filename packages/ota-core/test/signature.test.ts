import { describe, expect, it } from 'vitest';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { createDigestSign, fileDigest, SignatureError, verifyDigestSign, verifyPackage, verifySign } from '../src/protocol/signature.js';
import type { UpgradeInfo } from '../src/protocol/messages.js';
import { testBytes } from './helpers/http.js';

const FILE = testBytes(50_000, 11);
const SHA = createHash('sha256').update(FILE).digest('hex');
const MD5 = createHash('md5').update(FILE).digest('hex');
const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const other = generateKeyPairSync('rsa', { modulusLength: 2048 });

const code = (f: () => void): string | undefined => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(SignatureError);
    return (e as SignatureError).code;
  }
  return undefined;
};

describe('sign / digestsign', () => {
  it('computes and checks sign for SHA256 and Md5', () => {
    expect(fileDigest(FILE, 'SHA256')).toBe(SHA);
    expect(fileDigest(FILE, 'Md5')).toBe(MD5);
    expect(code(() => verifySign('SHA256', SHA, SHA.toUpperCase()))).toBeUndefined();
    expect(code(() => verifySign('Md5', MD5, MD5))).toBeUndefined();
    const flipped = (SHA[0] === '0' ? '1' : '0') + SHA.slice(1);
    expect(code(() => verifySign('SHA256', SHA, flipped))).toBe('SIGN_MISMATCH');
    expect(code(() => verifySign('SHA256', SHA, MD5))).toBe('BAD_INPUT');
    expect(code(() => verifySign('Md5', MD5, 'z'.repeat(32)))).toBe('BAD_INPUT');
  });

  it('verifies RSA-SHA256 digestsign over the binary digest; rejects wrong ones', () => {
    const sig = createDigestSign('SHA256', SHA, privateKey);
    expect(Buffer.from(sig, 'base64')).toHaveLength(256);
    expect(code(() => verifyDigestSign('SHA256', SHA, sig, publicKey))).toBeUndefined();
    const md5sig = createDigestSign('Md5', MD5, privateKey);
    expect(code(() => verifyDigestSign('Md5', MD5, md5sig, publicKey))).toBeUndefined();
    // signature of another digest, another key, a flipped bit, the hex text instead of the bytes
    expect(code(() => verifyDigestSign('SHA256', SHA, createDigestSign('SHA256', 'ab'.repeat(32), privateKey), publicKey))).toBe('DIGESTSIGN_INVALID');
    expect(code(() => verifyDigestSign('SHA256', SHA, sig, other.publicKey))).toBe('DIGESTSIGN_INVALID');
    const raw = Buffer.from(sig, 'base64');
    raw[100] ^= 1;
    expect(code(() => verifyDigestSign('SHA256', SHA, raw.toString('base64'), publicKey))).toBe('DIGESTSIGN_INVALID');
    const overHex = sign('sha256', Buffer.from(SHA), privateKey).toString('base64');
    expect(code(() => verifyDigestSign('SHA256', SHA, overHex, publicKey))).toBe('DIGESTSIGN_INVALID');
    expect(code(() => verifyDigestSign('SHA256', SHA, 'not base64!', publicKey))).toBe('DIGESTSIGN_INVALID');
    expect(code(() => verifyDigestSign('SHA256', SHA, sig.slice(0, 40), publicKey))).toBe('DIGESTSIGN_INVALID');
    const weak = generateKeyPairSync('rsa', { modulusLength: 1024 });
    expect(code(() => verifyDigestSign('SHA256', SHA, createDigestSign('SHA256', SHA, weak.privateKey), weak.publicKey))).toBe('BAD_KEY');
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expect(code(() => verifyDigestSign('SHA256', SHA, sig, ec.publicKey))).toBe('BAD_KEY');
  });

  it('verifyPackage combines size, sign and digestsign policy', () => {
    const info: UpgradeInfo = { id: '1', size: FILE.length, version: '1.1', url: 'https://h.test/f', signMethod: 'SHA256', sign: SHA, isDiff: 0, digestsign: createDigestSign('SHA256', SHA, privateKey) };
    expect(code(() => verifyPackage(info, SHA, FILE.length, { publicKey }))).toBeUndefined();
    expect(code(() => verifyPackage(info, SHA, FILE.length - 1, { publicKey }))).toBe('SIZE_MISMATCH');
    expect(code(() => verifyPackage(info, SHA, FILE.length, { publicKey: other.publicKey }))).toBe('DIGESTSIGN_INVALID');
    const { digestsign: _d, ...unsigned } = info;
    expect(code(() => verifyPackage(unsigned, SHA, FILE.length, { publicKey }))).toBe('DIGESTSIGN_MISSING');
    expect(code(() => verifyPackage(unsigned, SHA, FILE.length))).toBeUndefined();
    expect(code(() => verifyPackage(info, SHA, FILE.length, { requireDigestSign: true }))).toBe('BAD_KEY');
  });
});
