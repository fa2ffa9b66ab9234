// Digests over what the flash holds: the running image against a diff's old SHA-256, and a
// downloaded package (notice digest, SHA-256, payload SHA-256) before set_boot.

import { createHash } from 'node:crypto';
import type { PackageHeader, Slot } from '@otadiff/patch-apply';
import type { OtaPort } from './flash-port.js';
import { Refusal } from './refusal.js';
import { OtaStep } from '../protocol/messages.js';

const HASH_BLOCK = 64 * 1024;

export async function checkOldImage(port: OtaPort, h: PackageHeader, running: Slot): Promise<void> {
  const sha = createHash('sha256');
  for (let off = 0; off < h.oldSize; off += HASH_BLOCK) {
    sha.update(await port.readImage(off, Math.min(HASH_BLOCK, h.oldSize - off)));
  }
  const have = sha.digest();
  if (!have.equals(Buffer.from(h.oldSha256))) {
    throw new Refusal(
      OtaStep.UPGRADE_FAILED,
      `refused: the diff was made for an image with SHA-256 ${Buffer.from(h.oldSha256).toString('hex').slice(0, 16)}…, slot ${running} holds ${have.toString('hex').slice(0, 16)}…`,
    );
  }
}


/** Digest (per signMethod), SHA-256, and SHA-256 of the records (from `payloadFrom`) of the package in the OTA partition. */
export async function hashPackage(port: OtaPort, size: number, alg: 'sha256' | 'md5', payloadFrom: number): Promise<{ digest: string; sha256: Uint8Array; payloadSha256: Uint8Array }> {
  const sha = createHash('sha256');
  const payload = createHash('sha256');
  const sign = alg === 'sha256' ? undefined : createHash(alg);
  for (let off = 0; off < size; off += HASH_BLOCK) {
    const block = await port.read(off, Math.min(HASH_BLOCK, size - off));
    sha.update(block);
    sign?.update(block);
    if (off + block.length > payloadFrom) payload.update(block.subarray(Math.max(0, payloadFrom - off)));
  }
  const sha256 = sha.digest();
  return { digest: sign === undefined ? sha256.toString('hex') : sign.digest('hex'), sha256: new Uint8Array(sha256), payloadSha256: new Uint8Array(payload.digest()) };
}
