// zlib's CRC-32 (native, node:zlib) in the patcher's Crc32 shape, for hosts; like node-sha256.ts, a
// device build leaves this module out and keeps the pure-TypeScript default.
import { crc32 as zlibCrc32 } from 'node:zlib';
import type { Crc32 } from './crc32.js';

export const nodeCrc32: Crc32 = (bytes, previous) => zlibCrc32(bytes, previous ?? 0) >>> 0;
