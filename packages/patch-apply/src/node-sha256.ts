// node:crypto's SHA-256 in the patcher's Sha256 shape, for hosts (the generator, the CLI, the Linux-host
// device); like file-flash.ts, a device build leaves this module out and keeps the pure-TypeScript default.
import { createHash } from 'node:crypto';
import type { Sha256Factory } from './sha256.js';

export const nodeSha256: Sha256Factory = () => {
  const h = createHash('sha256');
  return {
    update: (data) => void h.update(data),
    digest: () => new Uint8Array(h.digest()),
  };
};
