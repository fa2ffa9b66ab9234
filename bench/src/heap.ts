// Runs heap-child.js in a fresh process per package, so each measurement starts from a clean heap.
import { fileURLToPath } from 'node:url';
import { run } from './proc.js';
import type { HeapReport } from './heap-child.js';

const child = fileURLToPath(new URL('./heap-child.js', import.meta.url));

export type { HeapReport };

export function measureHeap(oldPath: string, pkgPath: string, newPath: string, workFile: string): HeapReport {
  // No bytecode flushing: the many collections would otherwise age out and free bytecode the baseline
  // included, which would hide part of the patcher's growth.
  const r = run(process.execPath, ['--expose-gc', '--no-flush-bytecode', child, oldPath, pkgPath, newPath, workFile]);
  const report = JSON.parse(r.stdout.toString()) as HeapReport;
  if (!report.restoredOk) throw new Error(`streaming apply of ${pkgPath} did not restore NEW`);
  return report;
}
