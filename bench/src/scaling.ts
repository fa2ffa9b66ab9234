// How apply time grows with the image: the multi-MB pair and the same pair repeated `factor` times
// (OLD×k, NEW×k), each applied by bspatch (whole process), by `otadiff apply` (whole process, cold) and
// in a warm process on the host service's path. Start-up is a constant; what grows is the cost per MB.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Pair } from './pairs.js';
import { cliBin } from './paths.js';
import { sameFile } from './peers.js';
import { findExecutable, run } from './proc.js';
import { measureThroughput } from './inprocess.js';
import { diffArgs } from './sizes.js';

export interface ScalingRow {
  pair: Pair;
  factor: number;
  /** Best of the runs, seconds; null when bsdiff/bspatch are not installed. */
  bspatch: number | null;
  coldApply: number;
  nodeStart: number;
  warmHostApply: number;
}

/** `pair` with OLD and NEW each repeated `factor` times, written into `dir`. */
export function repeatedPair(pair: Pair, factor: number, dir: string): Pair {
  const repeat = (path: string, out: string): string => {
    const b = readFileSync(path);
    writeFileSync(out, Buffer.concat(Array.from({ length: factor }, () => b)));
    return out;
  };
  return {
    name: `${pair.name} ×${factor}`,
    oldPath: repeat(pair.oldPath, join(dir, `x${factor}.old`)),
    newPath: repeat(pair.newPath, join(dir, `x${factor}.new`)),
    oldSize: pair.oldSize * factor,
    newSize: pair.newSize * factor,
  };
}

/** Apply times of one pair (its inplace package made here), every restored image compared with NEW. */
export function measureScaling(pair: Pair, factor: number, applyRuns: number, workDir: string): ScalingRow {
  const tag = join(workDir, `scale${factor}`);
  const node = process.execPath;
  run(node, diffArgs(pair, 'inplace', `${tag}.otad`));
  const bsdiff = findExecutable('bsdiff');
  const bspatch = findExecutable('bspatch');
  const peer = bsdiff !== null && bspatch !== null;
  if (peer) run(bsdiff, [pair.oldPath, pair.newPath, `${tag}.bsdiff`]);
  let coldApply = Infinity;
  let nodeStart = Infinity;
  let bsApply = Infinity;
  for (let r = 0; r < applyRuns; r++) {
    coldApply = Math.min(coldApply, run(node, [cliBin, 'apply', pair.oldPath, `${tag}.otad`, '-o', `${tag}.ours`, '--json']).seconds);
    nodeStart = Math.min(nodeStart, run(node, ['-e', '0']).seconds);
    if (peer) bsApply = Math.min(bsApply, run(bspatch, [pair.oldPath, `${tag}.theirs`, `${tag}.bsdiff`]).seconds);
  }
  if (!sameFile(`${tag}.ours`, pair.newPath)) throw new Error(`otadiff apply did not restore NEW for ${pair.name}`);
  if (peer && !sameFile(`${tag}.theirs`, pair.newPath)) throw new Error(`bspatch did not restore NEW for ${pair.name}`);
  const warm = measureThroughput(pair.oldPath, `${tag}.otad`, 3000);
  return { pair, factor, bspatch: peer ? bsApply : null, coldApply, nodeStart, warmHostApply: warm.hostApplySeconds };
}
