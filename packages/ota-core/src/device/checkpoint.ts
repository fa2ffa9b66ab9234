// Resumable download checkpoint: byte offset + the running hash's internal
// state (hash-wasm save()), so that after a power cut the device continues
// hashing from where it stopped instead of re-reading what it already wrote.
// Compact binary codec with CRC-32, validated field by field on decode.

import { crc32 } from 'node:zlib';

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

export type HashAlgorithm = 'sha256' | 'md5';

export interface DownloadCheckpoint {
  algorithm: HashAlgorithm;
  /** Bytes written (and hashed) so far. */
  offset: number;
  /** Size of the whole file. */
  totalSize: number;
  /** Lower-case hex digest the finished file must have; ties the checkpoint to one target. */
  expectedDigest: string;
  /** Strong ETag of the representation being fetched, for If-Range. */
  etag?: string;
  /** hash-wasm internal state after `offset` bytes. */
  hashState: Uint8Array;
}

const MAGIC = 0x4f444350; // "ODCP"
const VERSION = 1;
const ALG_CODE: Record<HashAlgorithm, number> = { sha256: 1, md5: 2 };
const DIGEST_LEN: Record<HashAlgorithm, number> = { sha256: 32, md5: 16 };
const MAX_TOTAL = 2 ** 48;
const MAX_ETAG = 256;
const MAX_STATE = 1024;
const HEADER = 4 + 4 + 8 + 8; // magic, version/alg/flags/reserved, offset, total

export const digestHexLength = (a: HashAlgorithm): number => DIGEST_LEN[a] * 2;

function checkEtag(etag: string): void {
  if (etag.length > MAX_ETAG || !/^[\x21-\x7e]+$/.test(etag)) throw new CheckpointError('etag must be 1..256 visible ASCII chars');
}

export function validateCheckpoint(cp: DownloadCheckpoint): void {
  if (cp.algorithm !== 'sha256' && cp.algorithm !== 'md5') throw new CheckpointError('unknown hash algorithm');
  if (!Number.isSafeInteger(cp.totalSize) || cp.totalSize < 0 || cp.totalSize > MAX_TOTAL) throw new CheckpointError('totalSize out of range');
  if (!Number.isSafeInteger(cp.offset) || cp.offset < 0 || cp.offset > cp.totalSize) throw new CheckpointError('offset outside 0..totalSize');
  const hexLen = digestHexLength(cp.algorithm);
  if (typeof cp.expectedDigest !== 'string' || cp.expectedDigest.length !== hexLen || !/^[0-9a-f]+$/.test(cp.expectedDigest)) {
    throw new CheckpointError(`expectedDigest must be ${hexLen} lower-case hex digits`);
  }
  if (cp.etag !== undefined) checkEtag(cp.etag);
  if (!(cp.hashState instanceof Uint8Array) || cp.hashState.length === 0 || cp.hashState.length > MAX_STATE) {
    throw new CheckpointError('hashState must be 1..1024 bytes');
  }
}

export function encodeCheckpoint(cp: DownloadCheckpoint): Uint8Array {
  validateCheckpoint(cp);
  const etag = cp.etag === undefined ? new Uint8Array(0) : new TextEncoder().encode(cp.etag);
  const dlen = DIGEST_LEN[cp.algorithm];
  const len = HEADER + dlen + 2 + etag.length + 2 + cp.hashState.length + 4;
  const out = new Uint8Array(len);
  const v = new DataView(out.buffer);
  let p = 0;
  v.setUint32(p, MAGIC);
  out[4] = VERSION;
  out[5] = ALG_CODE[cp.algorithm];
  out[6] = cp.etag === undefined ? 0 : 1;
  out[7] = 0;
  p = 8;
  v.setBigUint64(p, BigInt(cp.offset));
  v.setBigUint64(p + 8, BigInt(cp.totalSize));
  p += 16;
  out.set(Buffer.from(cp.expectedDigest, 'hex'), p);
  p += dlen;
  v.setUint16(p, etag.length);
  out.set(etag, p + 2);
  p += 2 + etag.length;
  v.setUint16(p, cp.hashState.length);
  out.set(cp.hashState, p + 2);
  p += 2 + cp.hashState.length;
  v.setUint32(p, crc32(out.subarray(0, p)));
  return out;
}

export function decodeCheckpoint(bytes: Uint8Array): DownloadCheckpoint {
  if (!(bytes instanceof Uint8Array)) throw new CheckpointError('checkpoint must be bytes');
  if (bytes.length < HEADER + 16 + 2 + 2 + 4) throw new CheckpointError(`checkpoint of ${bytes.length} bytes is truncated`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (v.getUint32(0) !== MAGIC) throw new CheckpointError('bad checkpoint magic');
  if (bytes[4] !== VERSION) throw new CheckpointError(`unsupported checkpoint version ${bytes[4]}`);
  const algorithm = bytes[5] === 1 ? 'sha256' : bytes[5] === 2 ? 'md5' : undefined;
  if (algorithm === undefined) throw new CheckpointError(`unknown hash algorithm code ${bytes[5]}`);
  const flags = bytes[6];
  if ((flags & ~1) !== 0 || bytes[7] !== 0) throw new CheckpointError('reserved checkpoint bits set');
  const crcAt = bytes.length - 4;
  if (v.getUint32(crcAt) !== crc32(bytes.subarray(0, crcAt))) throw new CheckpointError('checkpoint CRC mismatch');
  const offset = v.getBigUint64(8);
  const total = v.getBigUint64(16);
  if (total > BigInt(MAX_TOTAL) || offset > total) throw new CheckpointError('checkpoint offset/size out of range');
  let p = HEADER;
  const dlen = DIGEST_LEN[algorithm];
  const need = (n: number): void => {
    if (p + n > crcAt) throw new CheckpointError('checkpoint field runs past its end');
  };
  need(dlen);
  const expectedDigest = Buffer.from(bytes.subarray(p, p + dlen)).toString('hex');
  p += dlen;
  need(2);
  const etagLen = v.getUint16(p);
  p += 2;
  if (etagLen > MAX_ETAG || ((flags & 1) === 0) !== (etagLen === 0)) throw new CheckpointError('checkpoint etag length invalid');
  need(etagLen);
  const etag = etagLen > 0 ? new TextDecoder().decode(bytes.subarray(p, p + etagLen)) : undefined;
  p += etagLen;
  need(2);
  const stateLen = v.getUint16(p);
  p += 2;
  if (stateLen === 0 || stateLen > MAX_STATE) throw new CheckpointError('checkpoint hash state length invalid');
  need(stateLen);
  const hashState = bytes.slice(p, p + stateLen);
  p += stateLen;
  if (p !== crcAt) throw new CheckpointError('checkpoint has trailing bytes');
  const cp: DownloadCheckpoint = { algorithm, offset: Number(offset), totalSize: Number(total), expectedDigest, hashState };
  if (etag !== undefined) cp.etag = etag;
  validateCheckpoint(cp);
  return cp;
}
