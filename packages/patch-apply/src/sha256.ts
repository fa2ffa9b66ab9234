// SHA-256 for the patcher: pure TypeScript by default (a device has nothing else); a host may inject a
// faster implementation (node:crypto) through the same two-method shape.
import { sha256 } from '@noble/hashes/sha2.js';

export interface Sha256 {
  update(data: Uint8Array): void;
  digest(): Uint8Array;
}

export type Sha256Factory = () => Sha256;

export const pureSha256: Sha256Factory = () => {
  const h = sha256.create();
  return {
    update: (data) => void h.update(data),
    digest: () => h.digest(),
  };
};
