import { generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { generatePackage, generateKeyPair, loadPrivateKey, packRaw, signPackage, trustedKeyOf, KEY_TYPES } from '@otadiff/diff-gen';
import { applyPackage } from '../src/apply-package.js';
import { PackageError } from '../src/package-error.js';
import { parseHeader, recordsOffset, SignatureType } from '../src/package-format.js';
import { KeyError, parsePublicKey } from '../src/public-key.js';
import { checkTrust, trustCheck, verifyWith, type TrustedKey } from '../src/signature.js';

const old = Uint8Array.from({ length: 20000 }, (_, i) => (i * 31) % 251 & (i % 3 === 0 ? 0xff : 0x1f));
const neu = old.slice();
for (let i = 500; i < neu.length; i += 333) neu[i] ^= 0x11;

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof PackageError) return e.code;
    throw e;
  }
  return 'ok';
}

describe('public keys', () => {
  it('reads Ed25519, P-256 and RSA-2048 keys from PEM and DER', () => {
    for (const type of KEY_TYPES) {
      const { publicKey } = generateKeyPair(type);
      const fromPem = parsePublicKey(publicKey);
      const der = Buffer.from(publicKey.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
      expect(parsePublicKey(new Uint8Array(der))).toEqual(fromPem);
      expect(fromPem.algorithm).toBe({ ed25519: 'ed25519', 'ecdsa-p256': 'ecdsaP256', 'rsa-2048': 'rsa2048' }[type]);
    }
  });

  it('refuses other curves, other RSA sizes, private keys and garbage with a KeyError', () => {
    const spki = { type: 'spki', format: 'pem' } as const;
    const others = [
      generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export(spki),
      generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey.export(spki),
      generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export(spki),
      generateKeyPairSync('ed448').publicKey.export(spki),
      generateKeyPair('ed25519').privateKey,
      'hello',
      '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----',
    ];
    for (const pem of others) expect(() => parsePublicKey(pem.toString())).toThrow(KeyError);
  });

  it('mutated DER keys give a KeyError or a key, never another exception', () => {
    const ders = KEY_TYPES.map((t) => new Uint8Array(Buffer.from(generateKeyPair(t).publicKey.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64')));
    fc.assert(
      fc.property(fc.nat({ max: ders.length - 1 }), fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { minLength: 1, maxLength: 4 }), fc.nat(), (which, edits, cut) => {
        const der = ders[which].slice(0, ders[which].length - (cut % 4 === 0 ? cut % 17 : 0));
        for (const [at, v] of edits) der[at % der.length] = v;
        try {
          const k = parsePublicKey(der);
          expect(['ed25519', 'ecdsaP256', 'rsa2048']).toContain(k.algorithm);
        } catch (e) {
          expect(e).toBeInstanceOf(KeyError);
        }
      }),
      { seed: 7, numRuns: 2000 },
    );
  });
});

describe('signature primitives', () => {
  it('verify what node:crypto (OpenSSL) signs, and nothing else', () => {
    const msg = new Uint8Array(300).map((_, i) => i);
    for (const type of KEY_TYPES) {
      const priv = loadPrivateKey(generateKeyPair(type).privateKey);
      const key = trustedKeyOf(priv);
      const alg = key.algorithm;
      // ECDSA signatures from OpenSSL are not low-S normalised: half of them have a high s.
      for (let i = 0; i < (type === 'ecdsa-p256' ? 16 : 2); i++) {
        const sig = new Uint8Array(
          alg === 'ed25519' ? cryptoSign(null, msg, priv) : cryptoSign('sha256', msg, alg === 'ecdsaP256' ? { key: priv, dsaEncoding: 'ieee-p1363' } : priv),
        );
        expect(verifyWith(key, alg, msg, sig)).toBe(true);
        const badMsg = msg.slice();
        badMsg[i] ^= 1;
        expect(verifyWith(key, alg, badMsg, sig)).toBe(false);
        const badSig = sig.slice();
        badSig[sig.length - 1 - i] ^= 0x80;
        expect(verifyWith(key, alg, msg, badSig)).toBe(false);
        expect(verifyWith(key, alg, msg, sig.subarray(1))).toBe(false);
      }
      const other: TrustedKey = trustedKeyOf(loadPrivateKey(generateKeyPair(type).privateKey));
      const sig = new Uint8Array(alg === 'ed25519' ? cryptoSign(null, msg, priv) : cryptoSign('sha256', msg, alg === 'ecdsaP256' ? { key: priv, dsaEncoding: 'ieee-p1363' } : priv));
      expect(verifyWith(other, alg, msg, sig)).toBe(false);
    }
  });
});

describe('signed packages', () => {
  const ed = loadPrivateKey(generateKeyPair('ed25519').privateKey);
  const rsa = loadPrivateKey(generateKeyPair('rsa-2048').privateKey);

  it('checkTrust: unsigned, wrong key, tampered header, counter below the record, and the owner-allowed downgrade', async () => {
    const signed = (await generatePackage(old, neu, { mode: 'ab', splitSize: 4096, signingKey: ed, securityCounter: 4 })).package;
    const h = parseHeader(signed);
    const head = signed.subarray(0, h.headerLength);
    const sig = signed.subarray(h.headerLength, recordsOffset(h));
    const keys = [trustedKeyOf(ed)];
    expect(codeOf(() => checkTrust(h, head, sig, { keys }))).toBe('ok');
    expect(codeOf(() => checkTrust(h, head, sig, { keys, securityCounter: 4 }))).toBe('ok');
    expect(codeOf(() => checkTrust(h, head, sig, { keys, securityCounter: 5 }))).toBe('security-counter');
    expect(codeOf(() => checkTrust(h, head, sig, { keys: [trustedKeyOf(rsa)] }))).toBe('bad-signature');
    expect(codeOf(() => checkTrust(h, head, sig, { keys: [] }))).toBe('bad-signature');
    const unsigned = (await generatePackage(old, neu, { mode: 'ab', splitSize: 4096 })).package;
    const hu = parseHeader(unsigned);
    expect(codeOf(() => checkTrust(hu, unsigned.subarray(0, hu.headerLength), new Uint8Array(0), { keys }))).toBe('unsigned');
    // Every bit of the signed header matters (a flipped bit with a resealed CRC still fails the signature).
    for (let i = 0; i < h.headerLength; i += 7) {
      const t = head.slice();
      t[i] ^= 4;
      expect(codeOf(() => checkTrust(h, t, sig, { keys }))).toBe('bad-signature');
    }
    const downgrade = (await generatePackage(old, neu, { mode: 'ab', splitSize: 4096, signingKey: ed, securityCounter: 1, allowDowngrade: true })).package;
    const hd = parseHeader(downgrade);
    expect(codeOf(() => checkTrust(hd, downgrade.subarray(0, hd.headerLength), downgrade.subarray(hd.headerLength, recordsOffset(hd)), { keys, securityCounter: 9 }))).toBe('ok');
  });

  it('the patcher refuses before producing anything; applies what verifies', async () => {
    const signed = (await generatePackage(old, neu, { mode: 'inplace', splitSize: 4096, signingKey: ed })).package;
    const unsigned = (await generatePackage(old, neu, { mode: 'inplace', splitSize: 4096 })).package;
    const trust = trustCheck({ keys: [trustedKeyOf(ed)] });
    let produced = 0;
    expect(() => applyPackage(old, unsigned, { trust, onChunk: () => produced++ })).toThrow(/not signed/);
    expect(produced).toBe(0);
    const r = applyPackage(old, signed, { trust, pieceSize: 33 });
    expect(Buffer.compare(r.image, neu)).toBe(0);
    expect(r.result.verified).toBe(true);
    // Without a policy the signature is carried but not judged.
    expect(applyPackage(old, signed).result.verified).toBe(false);
  });

  it('signPackage signs an unsigned package offline, re-signs with another algorithm, and keeps the records', async () => {
    const { package: unsigned } = await generatePackage(old, neu, { mode: 'ab', splitSize: 4096, firmwareVersion: '2.0.1', securityCounter: 6 });
    const hu = parseHeader(unsigned);
    const signed = signPackage(unsigned, ed);
    const hs = parseHeader(signed);
    expect([hs.signatureType, hs.signatureLength, hs.firmwareVersion, hs.securityCounter]).toEqual([SignatureType.ed25519, 64, '2.0.1', 6]);
    expect(Buffer.compare(signed.subarray(recordsOffset(hs)), unsigned.subarray(recordsOffset(hu)))).toBe(0);
    expect(Buffer.compare(applyPackage(old, signed, { trust: trustCheck({ keys: [trustedKeyOf(ed)] }) }).image, neu)).toBe(0);
    const resigned = signPackage(signed, rsa);
    expect(parseHeader(resigned).signatureLength).toBe(256);
    expect(Buffer.compare(applyPackage(old, resigned, { trust: trustCheck({ keys: [trustedKeyOf(rsa)] }) }).image, neu)).toBe(0);
    expect(() => applyPackage(old, resigned, { trust: trustCheck({ keys: [trustedKeyOf(ed)] }) })).toThrow(/does not verify/);
    expect(() => signPackage(signed.subarray(0, signed.length - 1), ed)).toThrow();
  });

  it('a raw (OTA_RAW) package carries the same signed header and restores the image', () => {
    const { package: pkg, header } = packRaw(neu, { splitSize: 4096, signingKey: ed, firmwareVersion: 'v9', securityCounter: 9 });
    expect([header.mode, header.oldSize, header.firmwareVersion, header.securityCounter]).toEqual(['raw', 0, 'v9', 9]);
    const r = applyPackage(new Uint8Array(0), pkg, { trust: trustCheck({ keys: [trustedKeyOf(ed)], securityCounter: 9 }), pieceSize: 1000 });
    expect(Buffer.compare(r.image, neu)).toBe(0);
    const tampered = pkg.slice();
    tampered[pkg.length - 10] ^= 1;
    expect(codeOf(() => applyPackage(new Uint8Array(0), tampered, { trust: trustCheck({ keys: [trustedKeyOf(ed)] }) }))).toBe('chunk-crc');
  });
});
