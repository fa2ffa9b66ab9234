// Runs heap-child.js in a fresh process per package, so each measurement starts from a clean heap.
import { fileURLToPath } from 'node:url';
import { run } from './proc.js';
import type { HeapReport } from './heap-child.js';

const child = fileURLToPath(new URL('./heap-child.js', import.meta.url));

export type { HeapReport };

export function measureHeap(oldPath: string, pkgPath: string, newPath: string, workFile: string): HeapReport {
  // No bytecode flushing: the many collections would otherwise age out and free bytecode the baseline
  // included, which would hide part of the patcher's growth.
  const flags = ['--expose-gc', '--no-flush-bytecode'];
  const withJit = runChild(flags, oldPath, pkgPath, newPath, workFile, 3);
  // The data figure comes from a process without the optimising compiler. With it, every apply
  // recompiles the hot loops: the patcher's hidden classes die with the previous patcher, and V8
  // discards optimised code that embeds a dead one ("weak objects"), so each peak carries a varying
  // amount of new deoptimisation data and relocation info (outside the code spaces). That is compiled
  // code, not the patcher's data; the objects and typed arrays the patcher keeps are the same either way.
  const data = runChild([...flags, '--no-opt'], oldPath, pkgPath, newPath, workFile, 2);
  return { ...withJit, dataGrowth: data.dataGrowth, arrayGrowth: data.arrayGrowth };
}

function runChild(flags: string[], oldPath: string, pkgPath: string, newPath: string, workFile: string, warmApplies: number): HeapReport {
  const r = run(process.execPath, [...flags, child, oldPath, pkgPath, newPath, workFile, String(warmApplies)]);
  const report = JSON.parse(r.stdout.toString()) as HeapReport;
  if (!report.restoredOk) throw new Error(`streaming apply of ${pkgPath} did not restore NEW`);
  return report;
}
