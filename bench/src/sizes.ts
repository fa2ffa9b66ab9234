// Package sizes: otadiff in both modes (made by the CLI, the same code the timing runs use) against
// every available peer.
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { applyPackage, nodeCrc32, nodeSha256, parseHeader, type LzmaParams, type PatchMode } from '@otadiff/patch-apply';
import type { Pair } from './pairs.js';
import { cliBin } from './paths.js';
import { sameFile, type Peer } from './peers.js';
import { run } from './proc.js';

export const SPLIT_SIZE = 64 * 1024;
export const DICT_SIZE = 16 * 1024;

export interface OurPackage {
  mode: PatchMode;
  path: string;
  bytes: number;
  /** `ramBytes` from `otadiff diff --json`. */
  ramBytes: number;
  /** LZMA properties read back from the package header. */
  lzma: LzmaParams;
}

export interface SizeRow {
  pair: Pair;
  inplace: OurPackage;
  ab: OurPackage;
  /** Patch bytes per peer id; absent when the peer is not installed. */
  peers: Record<string, number>;
}

/** Arguments of `otadiff diff` as the bench runs it. */
export function diffArgs(pair: Pair, mode: PatchMode, out: string): string[] {
  return [cliBin, 'diff', pair.oldPath, pair.newPath, '-o', out, '--mode', mode, '--split-size', String(SPLIT_SIZE), '--dict-size', String(DICT_SIZE), '--json'];
}

/**
 * Runs `otadiff diff` (which verifies its package restores NEW before writing it), then restores the
 * written package here once more and compares it with NEW, as every peer's patch is.
 */
function ours(pair: Pair, mode: PatchMode, workDir: string, tag: string): OurPackage {
  const path = join(workDir, `${tag}.${mode}.otad`);
  const json = JSON.parse(run(process.execPath, diffArgs(pair, mode, path)).stdout.toString()) as { patchBytes: number; ramBytes: number };
  const bytes = statSync(path).size;
  if (bytes !== json.patchBytes) throw new Error(`otadiff diff reported ${json.patchBytes} bytes but wrote ${bytes}`);
  const pkg = new Uint8Array(readFileSync(path));
  const restored = applyPackage(new Uint8Array(readFileSync(pair.oldPath)), pkg, { sha256: nodeSha256, crc32: nodeCrc32 }).image;
  if (Buffer.compare(restored, readFileSync(pair.newPath)) !== 0) throw new Error(`our ${mode} package did not restore NEW for ${pair.name}`);
  return { mode, path, bytes, ramBytes: json.ramBytes, lzma: parseHeader(pkg).lzma };
}

/** Sizes for one pair; every patch, ours included, is restored once and compared with NEW, so no size is taken on trust. */
export async function measureSizes(pair: Pair, peers: Peer[], workDir: string, tag: string): Promise<SizeRow> {
  const inplace = ours(pair, 'inplace', workDir, tag);
  const ab = ours(pair, 'ab', workDir, tag);
  const sizes: Record<string, number> = {};
  for (const peer of peers) {
    if (!peer.available) continue;
    const patch = join(workDir, `${tag}.${peer.id}.patch`);
    const back = join(workDir, `${tag}.${peer.id}.restored`);
    await peer.make(pair.oldPath, pair.newPath, patch);
    await peer.restore(pair.oldPath, patch, back);
    if (!sameFile(back, pair.newPath)) throw new Error(`${peer.label} did not restore NEW for ${pair.name}`);
    sizes[peer.id] = statSync(patch).size;
  }
  return { pair, inplace, ab, peers: sizes };
}

export function geometricMean(values: number[]): number {
  if (values.length === 0) return NaN;
  let s = 0;
  for (const v of values) s += Math.log(v);
  return Math.exp(s / values.length);
}
