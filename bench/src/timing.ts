// Whole-process wall time, process start included: otadiff diff vs bsdiff, otadiff apply vs bspatch.
// Runs are interleaved (ours, peer, ours, peer, …) so drift in machine load hits both alike; the minimum counts.
import { join } from 'node:path';
import type { Pair } from './pairs.js';
import { cliBin } from './paths.js';
import { sameFile } from './peers.js';
import { findExecutable, run } from './proc.js';
import { diffArgs } from './sizes.js';

export interface TimingRow {
  pair: Pair;
  runs: { diff: number; apply: number };
  oursDiff: number;
  oursApply: number;
  /** null when bsdiff/bspatch are not installed. */
  bsdiff: number | null;
  bspatch: number | null;
  /** `node -e 0`, measured between the applies: the floor every otadiff process starts from. */
  nodeStart: number;
  /**
   * `otadiff apply` of an OLD→OLD package, measured between the applies: everything an apply does
   * (start-up, modules, reading, SHA-256 of OLD and NEW, CRC-32, copying, writing) but decoding.
   */
  identityApply: number;
  /** `ramBytes` the CLI reported (diff --json). */
  cliRamBytes: number;
  cliPatchBytes: number;
}

interface CliDiffJson {
  patchBytes: number;
  ramBytes: number;
}

export function measureTimes(pair: Pair, runs: { diff: number; apply: number }, workDir: string, tag: string): TimingRow {
  const bsdiff = findExecutable('bsdiff');
  const bspatch = findExecutable('bspatch');
  const node = process.execPath;
  const ourPatch = join(workDir, `${tag}.cli.otad`);
  const ourOut = join(workDir, `${tag}.cli.new`);
  const bsPatch = join(workDir, `${tag}.timing.bsdiff`);
  const bsOut = join(workDir, `${tag}.timing.bspatched`);
  const dArgs = diffArgs(pair, 'inplace', ourPatch);
  const applyArgs = [cliBin, 'apply', pair.oldPath, ourPatch, '-o', ourOut, '--json'];
  const identityPatch = join(workDir, `${tag}.identity.otad`);
  const identityOut = join(workDir, `${tag}.identity.new`);
  run(node, diffArgs({ ...pair, newPath: pair.oldPath }, 'inplace', identityPatch));
  const identityArgs = [cliBin, 'apply', pair.oldPath, identityPatch, '-o', identityOut, '--json'];

  let oursDiff = Infinity;
  let bsDiffT = Infinity;
  let json: CliDiffJson | null = null;
  for (let r = 0; r < runs.diff; r++) {
    const d = run(node, dArgs);
    oursDiff = Math.min(oursDiff, d.seconds);
    json = JSON.parse(d.stdout.toString()) as CliDiffJson;
    if (bsdiff) bsDiffT = Math.min(bsDiffT, run(bsdiff, [pair.oldPath, pair.newPath, bsPatch]).seconds);
  }
  let oursApply = Infinity;
  let bsApplyT = Infinity;
  let nodeStart = Infinity;
  let identityApply = Infinity;
  for (let r = 0; r < runs.apply; r++) {
    oursApply = Math.min(oursApply, run(node, applyArgs).seconds);
    nodeStart = Math.min(nodeStart, run(node, ['-e', '0']).seconds);
    identityApply = Math.min(identityApply, run(node, identityArgs).seconds);
    if (bspatch && bsdiff) bsApplyT = Math.min(bsApplyT, run(bspatch, [pair.oldPath, bsOut, bsPatch]).seconds);
  }
  if (!sameFile(ourOut, pair.newPath)) throw new Error(`otadiff apply did not restore NEW for ${pair.name}`);
  if (!sameFile(identityOut, pair.oldPath)) throw new Error(`otadiff apply of the OLD→OLD package did not give OLD for ${pair.name}`);
  if (bspatch && bsdiff && !sameFile(bsOut, pair.newPath)) throw new Error(`bspatch did not restore NEW for ${pair.name}`);
  return {
    pair,
    runs,
    oursDiff,
    oursApply,
    bsdiff: bsdiff ? bsDiffT : null,
    bspatch: bspatch && bsdiff ? bsApplyT : null,
    nodeStart,
    identityApply,
    cliRamBytes: json!.ramBytes,
    cliPatchBytes: json!.patchBytes,
  };
}
