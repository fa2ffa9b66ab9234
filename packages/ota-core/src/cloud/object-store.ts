// Firmware images and made packages as content-addressed files: DATA/files/objects/ab/abcdef…
// (the SHA-256 of the bytes), written once to a temporary file, fsynced, renamed into place and the
// directory fsynced, so a crash leaves either the whole object or none. The database holds what
// they are (firmware and packages tables); the file server serves them under /objects/….

import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';

const SHA256_RE = /^[0-9a-f]{64}$/;

export class ObjectStoreError extends Error {
  override name = 'ObjectStoreError';
}

/** Writes `bytes` to `path` durably: tmp file + fsync + rename + fsync of the directory. */
export function writeFileDurably(dir: string, name: string, bytes: Uint8Array, mode = 0o644): void {
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${name}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'w', mode);
  try {
    for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    unlinkSync(tmp);
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, join(dir, name));
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

export const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

export class ObjectStore {
  /** `root` is the file server's root (DATA/files); objects live in root/objects. */
  constructor(readonly root: string) {}

  private dirOf(sha: string): string {
    if (!SHA256_RE.test(sha)) throw new ObjectStoreError(`not a SHA-256: ${JSON.stringify(sha).slice(0, 80)}`);
    return join(this.root, 'objects', sha.slice(0, 2));
  }

  /** The file of object `sha`. */
  pathOf(sha: string): string {
    return join(this.dirOf(sha), sha);
  }

  /** Its path under the file server. */
  urlPath(sha: string): string {
    this.dirOf(sha);
    return `/objects/${sha.slice(0, 2)}/${sha}`;
  }

  has(sha: string): boolean {
    return existsSync(this.pathOf(sha));
  }

  /** Stores `bytes` (once: an object that exists with its size is kept) and returns its address. */
  put(bytes: Uint8Array): { sha256: string; size: number } {
    const sha256 = sha256Hex(bytes);
    const path = this.pathOf(sha256);
    if (!(existsSync(path) && statSync(path).size === bytes.length)) writeFileDurably(this.dirOf(sha256), sha256, bytes);
    return { sha256, size: bytes.length };
  }

  /** The bytes of object `sha`, checked against their address (a damaged file is an error, not an image). */
  read(sha: string): Uint8Array {
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(readFileSync(this.pathOf(sha)));
    } catch (e) {
      throw new ObjectStoreError(`object ${sha.slice(0, 16)}… is missing from ${join(this.root, 'objects')}: ${(e as Error).message}`);
    }
    if (sha256Hex(bytes) !== sha) throw new ObjectStoreError(`object ${sha.slice(0, 16)}… is damaged: its bytes do not hash to its name`);
    return bytes;
  }
}
