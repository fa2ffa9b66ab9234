// Resumable hashers (hash-wasm): state can be saved after any update and
// loaded into a fresh hasher later, even in another process.

import { createMD5, createSHA256, type IHasher } from 'hash-wasm';
import type { HashAlgorithm } from './checkpoint.js';

export async function createHasher(algorithm: HashAlgorithm): Promise<IHasher> {
  const h = algorithm === 'sha256' ? await createSHA256() : await createMD5();
  h.init();
  return h;
}

/** A hasher continuing from `state`; throws if the state is not loadable. */
export async function resumeHasher(algorithm: HashAlgorithm, state: Uint8Array): Promise<IHasher> {
  const h = await createHasher(algorithm);
  h.load(state);
  return h;
}
