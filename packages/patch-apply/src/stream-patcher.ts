// Applies a package that arrives as a stream of arbitrary-sized pieces, producing the new image chunk by chunk.
import { ChunkDecoder, chunkDecoderRamBytes } from './chunk-decoder.js';
import { PackageError } from './package-error.js';
import {
  checkChunkTable,
  DEFAULT_LIMITS,
  FIXED_HEADER_BYTES,
  packageLength,
  parseFixedHeader,
  readChunkEntry,
  type ChunkEntry,
  type FixedHeader,
  type PackageHeader,
  type PatcherLimits,
  type SignedHeader,
} from './package-format.js';
import type { Crc32 } from './crc32.js';
import { pureSha256, type Sha256, type Sha256Factory } from './sha256.js';
import type { TrustCheck } from './signature.js';
import type { SourceReader } from './source-reader.js';

/** Receives each restored chunk, in ascending order; `bytes` is only valid during the call. */
export type ChunkSink = (index: number, offset: number, bytes: Uint8Array) => void;

export interface StreamPatcherOptions {
  source: SourceReader;
  sink: ChunkSink;
  limits?: PatcherLimits;
  /** Bytes the source holds; a package that needs a larger old image is refused before it is read. */
  sourceLength?: number;
  /** Check the source against the package's old-image SHA-256 before producing anything (default true). */
  verifyOld?: boolean;
  /** SHA-256 implementation (default: pure TypeScript). */
  sha256?: Sha256Factory;
  /** CRC-32 implementation for the chunk checks (default: pure TypeScript). */
  crc32?: Crc32;
  /**
   * Judges the signed header and signature block before anything is produced, e.g.
   * `trustCheck({ keys })`: signed by one of these keys, security counter acceptable. Without it the
   * signature block is read but not judged.
   */
  trust?: TrustCheck;
  /** Called once the header, chunk table and signature are validated, before anything is produced. */
  onHeader?: (header: SignedHeader) => void;
}

export interface PatchResult {
  /** The header without its chunk table (parseHeader of the package's first headerLength bytes has it). */
  header: SignedHeader;
  /** The package's signature block (empty when it has none). */
  signature: Uint8Array;
  /** The signature was checked against the caller's trust policy. */
  verified: boolean;
}

const OLD_HASH_BLOCK = 4096;

type Phase = 'fixed' | 'table' | 'signature' | 'records' | 'done';

export function digestEquals(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

/** SHA-256 of `length` bytes of a source, read through a small block buffer. */
export function hashSource(source: SourceReader, length: number, sha256: Sha256Factory = pureSha256, block = new Uint8Array(OLD_HASH_BLOCK)): Uint8Array {
  const h = sha256();
  for (let off = 0; off < length; off += block.length) {
    const n = Math.min(block.length, length - off);
    source.read(off, block, 0, n);
    h.update(block.subarray(0, n));
  }
  return h.digest();
}

export class StreamPatcher {
  private phase: Phase = 'fixed';
  private readonly limits: PatcherLimits;
  private readonly fixedBuf = new Uint8Array(FIXED_HEADER_BYTES);
  private fixed: FixedHeader | null = null;
  /** The whole signed header (fixed part, chunk table, CRC) until the signature is checked; `table` then keeps a view of it. */
  private headBuf: Uint8Array | null = null;
  private filled = 0;
  private hdr: SignedHeader | null = null;
  /** The validated chunk table, read one entry at a time into `entry`: no object per chunk. */
  private table: DataView | null = null;
  private readonly entry: ChunkEntry = { recordOffset: 0, recordLength: 0, rawLength: 0, crc32: 0 };
  private decoder: ChunkDecoder | null = null;
  private chunk = 0;
  private readonly newHash: Sha256;
  private readonly payloadHash: Sha256;
  private signature = new Uint8Array(0);
  private received = 0;

  constructor(private readonly opts: StreamPatcherOptions) {
    this.limits = opts.limits ?? DEFAULT_LIMITS;
    this.newHash = (opts.sha256 ?? pureSha256)();
    this.payloadHash = (opts.sha256 ?? pureSha256)();
  }

  /** The header, once it has been read and validated. */
  get header(): SignedHeader | null {
    return this.hdr;
  }

  /** Bytes this patcher allocates for the package being applied (known once the header is read). */
  get ramBytes(): number | null {
    return this.hdr ? streamPatcherRamBytes(this.hdr) : null;
  }

  /** Index of the next chunk to be produced. */
  get chunksDone(): number {
    return this.chunk;
  }

  push(piece: Uint8Array): void {
    let pos = 0;
    while (pos < piece.length) {
      switch (this.phase) {
        case 'fixed': {
          const n = Math.min(FIXED_HEADER_BYTES - this.filled, piece.length - pos);
          this.fixedBuf.set(piece.subarray(pos, pos + n), this.filled);
          this.filled += n;
          pos += n;
          if (this.filled === FIXED_HEADER_BYTES) {
            this.fixed = parseFixedHeader(this.fixedBuf, this.limits);
            this.headBuf = new Uint8Array(this.fixed.headerLength);
            this.headBuf.set(this.fixedBuf);
            this.phase = 'table';
          }
          break;
        }
        case 'table': {
          const head = this.headBuf!;
          const n = Math.min(head.length - this.filled, piece.length - pos);
          head.set(piece.subarray(pos, pos + n), this.filled);
          this.filled += n;
          pos += n;
          if (this.filled === head.length) this.readTable();
          break;
        }
        case 'records': {
          const n = Math.min(this.decoder!.recordRemaining, piece.length - pos);
          this.payloadHash.update(piece.subarray(pos, pos + n));
          const done = this.decoder!.feed(piece, pos, pos + n);
          pos += n;
          if (done) this.finishChunk();
          break;
        }
        case 'signature': {
          const n = Math.min(this.signature.length - this.filled, piece.length - pos);
          this.signature.set(piece.subarray(pos, pos + n), this.filled);
          this.filled += n;
          pos += n;
          if (this.filled === this.signature.length) this.startRecords();
          break;
        }
        case 'done':
          throw new PackageError('trailing-data', `package has bytes past its declared end (${packageLength(this.hdr!)} bytes)`);
      }
    }
    this.received += piece.length;
  }

  /** Call when the stream ended; verifies the whole package was there and the new image's SHA-256. */
  end(): PatchResult {
    if (this.phase !== 'done') {
      const expected = this.hdr ? packageLength(this.hdr) : null;
      throw new PackageError('truncated', `package is truncated after ${this.received} bytes${expected !== null ? ` of ${expected}` : ''}`);
    }
    const h = this.hdr!;
    if (!digestEquals(this.payloadHash.digest(), h.payloadSha256))
      throw new PackageError('payload-mismatch', 'the records do not match the payload SHA-256 of the header');
    if (!digestEquals(this.newHash.digest(), h.newSha256))
      throw new PackageError('new-image-mismatch', 'restored image does not match the package\'s new-image SHA-256');
    return { header: h, signature: this.signature, verified: this.opts.trust !== undefined };
  }

  private readTable(): void {
    const head = this.headBuf!;
    const h = this.fixed!;
    const { entries, transform } = checkChunkTable(h, head.subarray(FIXED_HEADER_BYTES), head, this.limits);
    this.table = entries;
    this.hdr = { ...h, transform };
    this.signature = new Uint8Array(h.signatureLength);
    this.filled = 0;
    if (this.signature.length > 0) this.phase = 'signature';
    else this.startRecords();
  }

  private startRecords(): void {
    const h = this.hdr!;
    this.opts.trust?.(h, this.headBuf!, this.signature);
    this.headBuf = null;
    if (this.opts.sourceLength !== undefined && h.oldSize > this.opts.sourceLength)
      throw new PackageError('old-image-mismatch', `the package expects a ${h.oldSize}-byte old image; this one has ${this.opts.sourceLength} bytes`);
    if (this.opts.verifyOld !== false && h.mode !== 'raw') {
      const got = hashSource(this.opts.source, h.oldSize, this.opts.sha256);
      if (!digestEquals(got, h.oldSha256))
        throw new PackageError('old-image-mismatch', 'the old image does not match the package (SHA-256 differs): wrong base version?');
    }
    this.opts.onHeader?.(h);
    this.decoder = new ChunkDecoder(h, this.opts.source, this.opts.crc32);
    this.chunk = 0;
    this.advanceChunk();
  }

  private advanceChunk(): void {
    const h = this.hdr!;
    if (this.chunk < h.chunkCount) {
      this.decoder!.begin(this.chunk, readChunkEntry(this.table!, this.chunk, this.entry));
      this.phase = 'records';
    } else {
      this.phase = 'done';
    }
  }

  private finishChunk(): void {
    const d = this.decoder!;
    const bytes = d.output.subarray(0, d.length);
    this.newHash.update(bytes);
    this.opts.sink(this.chunk, this.chunk * this.hdr!.splitSize, bytes);
    this.chunk++;
    this.advanceChunk();
  }
}

/**
 * The JavaScript engine's share of this patcher, beyond its buffers: V8 builds a hidden class for every
 * field along each of its objects' constructors (about 120 of them, rebuilt by every apply since they die
 * with the patcher), plus object headers and typed-array wrappers. Measured by heap snapshots at 15-21 KB
 * whatever the image size (bench/README.md, "Memory"); a patcher in C has none of it.
 */
export const JS_ENGINE_BYTES = 24 * 1024;
/**
 * What a transform adds to it (its predicted source, codec and map objects, the decoded section): live
 * heap growth beyond the transform's buffers measured at 5.7 KB on the micro:bit and ESP8266 packages.
 */
export const TRANSFORM_JS_ENGINE_BYTES = 8 * 1024;

/** The engine's share for a package: JS_ENGINE_BYTES, and TRANSFORM_JS_ENGINE_BYTES with a transform. */
export function jsEngineBytes(h: Partial<Pick<PackageHeader, 'transform'>>): number {
  return JS_ENGINE_BYTES + (h.transform ? TRANSFORM_JS_ENGINE_BYTES : 0);
}

/**
 * What a StreamPatcher needs for a package: chunk decoder + header buffers (the signed header stays,
 * as the chunk table) + old-hash block, and the engine's share of its objects (jsEngineBytes).
 */
export function streamPatcherRamBytes(h: Pick<PackageHeader, 'mode' | 'splitSize' | 'lzma' | 'headerLength' | 'signatureLength'> & Partial<Pick<PackageHeader, 'transform'>>): number {
  return chunkDecoderRamBytes(h) + FIXED_HEADER_BYTES + h.headerLength + OLD_HASH_BLOCK + h.signatureLength + jsEngineBytes(h);
}
