// OLD + NEW -> otadiff package: sort the sources once, match each chunk against the window the device
// will have at that moment, encode, compress, and prove the result restores before returning it.

import {
  applyPackage,
  chunkCountFor,
  chunkMaskOf,
  DEFAULT_MAX_MAP_ENTRIES,
  MAX_DICT_SIZE,
  MAX_SPLIT_SIZE,
  MIN_DICT_SIZE,
  nodeCrc32,
  trustCheck,
  nodeSha256,
  parseHeader,
  SPLIT_ALIGN,
  windowBoundary,
  type ChunkEntry,
  type LzmaParams,
  type PackageHeader,
  type PackageTransform,
  type PatchMode,
  type ReleaseInfo,
  transformSectionLength,
} from '@otadiff/patch-apply';
import type { KeyObject } from 'node:crypto';
import { assemblePackage, trustedKeyOf } from './sign-package.js';
import type { MatchOptions, SourceIndex } from './matcher.js';
import { indexesInSharedMemory, indexImages } from './index-images.js';
import type { ChunkDiffJob } from './chunk-diff.js';
import { ChunkHelper } from './chunk-helper.js';
import { diffChunks, type ChunkRecord } from './chunk-pass.js';
import { transformPass } from './transform-pass.js';
import { planTransform, TRANSFORM_CHOICES, type TransformChoice } from './transform-plan.js';

export class GenerateError extends Error {
  override readonly name = 'GenerateError';
}

/** What the owner states about NEW, signed with the package. */
export interface ReleaseOptions {
  /** Firmware version of NEW (printable ASCII, at most 32 bytes). */
  firmwareVersion?: string;
  /** Anti-rollback counter of NEW (default 0). */
  securityCounter?: number;
  /** Let devices install this package below their recorded security counter. */
  allowDowngrade?: boolean;
  /** Private key (Ed25519, EC P-256 or RSA-2048) to sign the package with. */
  signingKey?: KeyObject;
}

export interface GenerateOptions extends ReleaseOptions {
  mode?: Exclude<PatchMode, 'raw'>;
  splitSize?: number;
  dictSize?: number;
  lc?: number;
  lp?: number;
  pb?: number;
  /** Matcher tuning knobs (benchmarks and experiments; the defaults are tuned on the ESP8266 corpus). */
  match?: MatchOptions;
  /**
   * In place, also match against NEW bytes already restored below the window boundary (costs a second
   * suffix array). Off by default: with the one-chunk lookback it made every measured package larger
   * (esbuild 0.23.0→0.23.1: 221 KB with it, 192 KB without) and the diff slower.
   */
  referenceNew?: boolean;
  /**
   * Executable-aware transform (docs/FORMAT.md, "Transform section"): `auto` (default) tries Thumb-2
   * when both images look like Thumb-2 code and Xtensa when both are ESP8266 application images,
   * `thumb2` or `xtensa` always tries that one, `none` never transforms. A chunk keeps the transform
   * only where its record gets smaller, and the package only when that pays for the transform section,
   * so no package grows because of it.
   */
  transform?: TransformChoice;
  /**
   * Load address of image offset 0 (e.g. 0x08000000) for Thumb-2 (default: read off the vector table,
   * else 0) and for a flat Xtensa image (an ESP8266 application image names its own addresses).
   */
  base?: number;
  /** Transform every chunk, smaller or not (tests of the transformed restore path). */
  transformEveryChunk?: boolean;
  /** Most label-map segments the package may declare (a device holds 8 bytes of RAM each). */
  maxMapEntries?: number;
  /** Apply the package in memory and compare with NEW before returning it (default true). */
  verify?: boolean;
  onProgress?: (event: GenerateProgress) => void;
}

export type GenerateProgress =
  | { phase: 'sort' }
  | { phase: 'chunk'; done: number; total: number }
  | { phase: 'transform'; done: number; total: number }
  | { phase: 'verify' };

export interface GenerateResult {
  package: Uint8Array;
  header: PackageHeader;
}

export const DEFAULT_SPLIT_SIZE = 64 * 1024;
export const DEFAULT_DICT_SIZE = 16 * 1024;
const MAX_IMAGE_BYTES = 0xffff_0000;
/** Below this, a chunk worker's start-up costs more than it saves. */
const MIN_HELPER_BYTES = 1 << 20;

/** The release fields of a header, validated. */
export function releaseInfo(o: ReleaseOptions): ReleaseInfo {
  const firmwareVersion = o.firmwareVersion ?? '';
  if (!/^[\x20-\x7e]{0,32}$/.test(firmwareVersion)) throw new GenerateError('firmware version must be at most 32 printable ASCII characters');
  const securityCounter = o.securityCounter ?? 0;
  if (!Number.isInteger(securityCounter) || securityCounter < 0 || securityCounter > 0xffff_ffff)
    throw new GenerateError('security counter must be an integer from 0 to 4294967295');
  return { firmwareVersion, securityCounter, allowDowngrade: o.allowDowngrade ?? false };
}

function checkOptions(o: { mode: string; splitSize: number; dictSize: number; lc: number; lp: number; pb: number }, oldLen: number, newLen: number): void {
  if (o.mode !== 'inplace' && o.mode !== 'ab') throw new GenerateError(`unknown mode "${String(o.mode)}" (inplace or ab)`);
  if (!Number.isInteger(o.splitSize) || o.splitSize < SPLIT_ALIGN || o.splitSize % SPLIT_ALIGN !== 0 || o.splitSize > MAX_SPLIT_SIZE)
    throw new GenerateError(`split size ${o.splitSize} must be a multiple of ${SPLIT_ALIGN} between ${SPLIT_ALIGN} and ${MAX_SPLIT_SIZE}`);
  if (!Number.isInteger(o.dictSize) || o.dictSize < MIN_DICT_SIZE || o.dictSize > MAX_DICT_SIZE)
    throw new GenerateError(`dictionary size ${o.dictSize} must be between ${MIN_DICT_SIZE} and ${MAX_DICT_SIZE}`);
  for (const [k, v, max] of [['lc', o.lc, 4], ['lp', o.lp, 4], ['pb', o.pb, 4]] as const)
    if (!Number.isInteger(v) || v < 0 || v > max) throw new GenerateError(`LZMA ${k} must be 0..${max}`);
  if (o.lc + o.lp > 4) throw new GenerateError('LZMA lc + lp must be at most 4');
  if (oldLen > MAX_IMAGE_BYTES || newLen > MAX_IMAGE_BYTES) throw new GenerateError('images larger than 4 GiB are not supported');
}

export async function generatePackage(oldImage: Uint8Array, newImage: Uint8Array, options: GenerateOptions = {}): Promise<GenerateResult> {
  const o = {
    mode: options.mode ?? 'inplace',
    splitSize: options.splitSize ?? DEFAULT_SPLIT_SIZE,
    dictSize: options.dictSize ?? DEFAULT_DICT_SIZE,
    // Command streams have little positional structure: lc=1 lp=0 pb=0 compresses the ESP8266 corpus
    // packages 1-3% smaller than LZMA's usual 3/0/2 (measured on every pair).
    lc: options.lc ?? 1,
    lp: options.lp ?? 0,
    pb: options.pb ?? 0,
    transform: options.transform ?? 'auto',
    maxMapEntries: options.maxMapEntries ?? DEFAULT_MAX_MAP_ENTRIES,
  } as const;
  checkOptions(o, oldImage.length, newImage.length);
  if (!TRANSFORM_CHOICES.includes(o.transform)) throw new GenerateError(`unknown transform "${String(o.transform)}" (${TRANSFORM_CHOICES.join(', ')})`);
  if (options.base !== undefined && (!Number.isInteger(options.base) || options.base < 0 || options.base > 0xffff_ffff))
    throw new GenerateError(`load address ${options.base} must be a 32-bit address`);
  if (!Number.isInteger(o.maxMapEntries) || o.maxMapEntries < 0) throw new GenerateError('maxMapEntries must be a non-negative integer');
  const release = releaseInfo(options);
  const progress = options.onProgress ?? (() => {});
  const lzma: LzmaParams = { lc: o.lc, lp: o.lp, pb: o.pb, dictSize: o.dictSize };
  const S = o.splitSize;
  const count = chunkCountFor(newImage.length, S);

  progress({ phase: 'sort' });
  // Only a chunk whose window starts with restored NEW bytes can reference them (inplace, from chunk 2 on).
  const needNew = options.referenceNew === true && windowBoundary({ mode: o.mode, splitSize: S }, count - 1) > 0;
  const sources = needNew ? [oldImage, newImage] : [oldImage];
  // A second thread for the chunks, booting while the sources are sorted; it searches the index where it
  // is, so only when that is in shared memory (the sorting uses both threads already when NEW is indexed too).
  const helper = count > 1 && newImage.length >= MIN_HELPER_BYTES && indexesInSharedMemory(sources) ? ChunkHelper.start() : undefined;
  let indexes: SourceIndex[];
  try {
    indexes = await indexImages(sources);
  } catch (e) {
    // The worker waits for its job and would keep the process alive.
    helper?.cancel();
    throw e;
  }
  const old: SourceIndex = indexes[0];
  const newer: SourceIndex | undefined = needNew ? indexes[1] : undefined;

  const job: ChunkDiffJob = { mode: o.mode, splitSize: S, old, newer, newImage, match: options.match };
  const plain = await diffChunks(job, count, lzma, helper, (done) => progress({ phase: 'chunk', done, total: count }));
  const { transform, picked } = await transformChunks(job, plain, lzma, o.transform, options, (done) => progress({ phase: 'transform', done, total: count }));
  const chunks: ChunkEntry[] = [];
  const records: Uint8Array[] = [];
  let offset = 0;
  for (let i = 0; i < count; i++) {
    const { record, rawLength } = picked[i];
    // The chunk's CRC is of its NEW bytes, whichever record restores them.
    chunks.push({ recordOffset: offset, recordLength: record.length, rawLength, crc32: plain[i].crc });
    records.push(record);
    offset += record.length;
  }

  const payloadHash = nodeSha256();
  for (const r of records) payloadHash.update(r);
  const pkg = assemblePackage(
    {
      mode: o.mode,
      splitSize: S,
      oldSize: oldImage.length,
      newSize: newImage.length,
      oldSha256: digest(oldImage),
      newSha256: digest(newImage),
      lzma,
      signatureType: 0,
      signatureLength: 0,
      payloadSha256: payloadHash.digest(),
      ...release,
      chunks,
      transform,
    },
    records,
    options.signingKey,
  );

  if (options.verify !== false) {
    progress({ phase: 'verify' });
    let restored: Uint8Array;
    try {
      const trust = options.signingKey === undefined ? undefined : trustCheck({ keys: [trustedKeyOf(options.signingKey)] });
      const limits = { maxDictSize: o.dictSize, maxSplitSize: S, maxImageSize: MAX_IMAGE_BYTES, maxMapEntries: o.maxMapEntries };
      restored = applyPackage(oldImage, pkg, { sha256: nodeSha256, crc32: nodeCrc32, trust, limits }).image;
    } catch (e) {
      throw new GenerateError(`internal error: the generated package does not apply (${(e as Error).message})`);
    }
    if (!bytesEqual(restored, newImage))
      throw new GenerateError('internal error: the generated package does not restore NEW');
  }
  return { package: pkg, header: parseHeader(pkg) };
}

/**
 * The transform pass, when asked for and the images look like its code, and the chunks it pays on: each
 * chunk keeps the smaller record, and the package the transform only if the records saved outweigh its
 * header section.
 */
async function transformChunks(
  job: ChunkDiffJob,
  plain: ChunkRecord[],
  lzma: LzmaParams,
  choice: TransformChoice,
  options: GenerateOptions,
  onChunk: (done: number) => void,
): Promise<{ transform: PackageTransform | null; picked: ChunkRecord[] }> {
  const none = { transform: null, picked: plain };
  const plan = planTransform(job.old.data, job.newImage, choice, options.base);
  if (plan === null) return none;
  const { map, records } = await transformPass(plan, job, plain, lzma, options.maxMapEntries ?? DEFAULT_MAX_MAP_ENTRIES, onChunk);
  const every = options.transformEveryChunk === true;
  const use = records.map((r, i) => every || r.record.length < plain[i].record.length);
  const transform: PackageTransform = { ...plan, chunkMask: chunkMaskOf(plain.length, (i) => use[i]), map };
  let saved = 0;
  for (let i = 0; i < plain.length; i++) if (use[i]) saved += plain[i].record.length - records[i].record.length;
  if (!use.some(Boolean) || (!every && saved <= transformSectionLength(transform, plain.length))) return none;
  return { transform, picked: plain.map((p, i) => (use[i] ? records[i] : p)) };
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

function digest(data: Uint8Array): Uint8Array {
  const h = nodeSha256();
  h.update(data);
  return h.digest();
}
