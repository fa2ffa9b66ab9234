// What both downloaders (HTTP and CoAP) do before the first request: check the target they were given
// and pick up a persisted checkpoint for exactly that target, or start over.
import type { IHasher } from 'hash-wasm';
import { digestHexLength, validateCheckpoint, type DownloadCheckpoint, type HashAlgorithm } from './checkpoint.js';
import { DownloadError } from './downloader.js';
import { createHasher, resumeHasher } from './hashing.js';

/** Validates the expected size and digest; returns the digest in lower-case hex. */
export function checkTarget(size: number, expectedDigest: string, hash: HashAlgorithm): string {
  if (!Number.isSafeInteger(size) || size < 0) throw new DownloadError('SIZE_MISMATCH', 'expectedSize must be a non-negative integer');
  const expected = expectedDigest.toLowerCase();
  if (expected.length !== digestHexLength(hash) || !/^[0-9a-f]+$/.test(expected)) {
    throw new DownloadError('DIGEST_MISMATCH', `expectedDigest is not a ${hash} hex digest`);
  }
  return expected;
}

export interface ResumePoint {
  hasher: IHasher;
  offset: number;
  etag?: string;
}

/**
 * Continues from `state` when it is a valid checkpoint of this very target (same algorithm, size and
 * digest); an unusable or foreign checkpoint means starting from byte 0 with a fresh hash.
 */
export async function resumePoint(state: DownloadCheckpoint | undefined, hash: HashAlgorithm, size: number, expected: string): Promise<ResumePoint> {
  if (state && state.algorithm === hash && state.totalSize === size && state.expectedDigest === expected) {
    try {
      validateCheckpoint(state);
      return { hasher: await resumeHasher(hash, state.hashState), offset: state.offset, etag: state.etag };
    } catch {
      // fall through: start over
    }
  }
  return { hasher: await createHasher(hash), offset: 0 };
}
