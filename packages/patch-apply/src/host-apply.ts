// What a host needs to apply a package held in memory, and no more: the restore, flash and signature
// modules (and the crypto libraries behind signatures) stay unloaded, which is a large part of a
// short-lived process's start-up (`otadiff apply`). Judging signatures needs trustCheck from the
// main entry point.
export { applyPackage } from './apply-package.js';
export type { ApplyOptions } from './apply-package.js';
export { streamPatcherRamBytes } from './stream-patcher.js';
export { DEFAULT_LIMITS } from './package-format.js';
export { PackageError } from './package-error.js';
export { nodeSha256 } from './node-sha256.js';
export { nodeCrc32 } from './node-crc32.js';
