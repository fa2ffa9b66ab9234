// The tools otadiff is compared with. Each is used when it is installed; the report lists the missing ones.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { findExecutable, run } from './proc.js';

export interface Peer {
  id: string;
  /** Column header in the report. */
  label: string;
  /** How to install it when missing. */
  install: string;
  available: boolean;
  /** Writes a patch (or, for xz, the compressed NEW) to `out`. */
  make(oldPath: string, newPath: string, out: string): Promise<void>;
  /** Restores NEW from OLD and the patch into `out` (used to check every patch is genuine). */
  restore(oldPath: string, patch: string, out: string): Promise<void>;
}

interface BsdiffNode {
  diff(oldFile: string, newFile: string, patchFile: string): Promise<void>;
  patch(oldFile: string, newFile: string, patchFile: string): Promise<void>;
}

function loadBsdiffNode(): BsdiffNode | null {
  try {
    return createRequire(import.meta.url)('bsdiff-node') as BsdiffNode;
  } catch {
    return null;
  }
}

export function detectPeers(): Peer[] {
  const bsdiff = findExecutable('bsdiff');
  const bspatch = findExecutable('bspatch');
  const xdelta3 = findExecutable('xdelta3');
  const zstd = findExecutable('zstd');
  const xz = findExecutable('xz');
  const bn = loadBsdiffNode();
  const missing = async (): Promise<void> => {
    throw new Error('tool not installed');
  };
  return [
    {
      id: 'bsdiff',
      label: 'bsdiff',
      install: 'apt-get install bsdiff',
      available: bsdiff !== null && bspatch !== null,
      make: async (o, n, out) => void run(bsdiff!, [o, n, out]),
      restore: async (o, p, out) => void run(bspatch!, [o, out, p]),
    },
    {
      id: 'bsdiff-node',
      label: 'bsdiff-node',
      install: 'npm install bsdiff-node',
      available: bn !== null,
      make: bn ? (o, n, out) => bn.diff(o, n, out) : missing,
      restore: bn ? (o, p, out) => bn.patch(o, out, p) : missing,
    },
    {
      id: 'xdelta3',
      label: 'xdelta3 -9',
      install: 'apt-get install xdelta3',
      available: xdelta3 !== null,
      make: async (o, n, out) => void run(xdelta3!, ['-9', '-e', '-f', '-s', o, n, out]),
      restore: async (o, p, out) => void run(xdelta3!, ['-d', '-f', '-s', o, p, out]),
    },
    {
      id: 'zstd',
      label: 'zstd -19 --long=27 --patch-from',
      install: 'apt-get install zstd',
      available: zstd !== null,
      make: async (o, n, out) => void run(zstd!, ['-q', '-f', '-19', '--long=27', `--patch-from=${o}`, n, '-o', out]),
      restore: async (o, p, out) => void run(zstd!, ['-q', '-f', '-d', '--long=27', `--patch-from=${o}`, p, '-o', out]),
    },
    {
      id: 'xz',
      label: 'xz -9e of NEW',
      install: 'apt-get install xz-utils',
      available: xz !== null,
      make: async (_o, n, out) => writeFileSync(out, run(xz!, ['-9e', '-c', n]).stdout),
      restore: async (_o, p, out) => writeFileSync(out, run(xz!, ['-d', '-c', p]).stdout),
    },
  ];
}

export function sameFile(a: string, b: string): boolean {
  return Buffer.compare(readFileSync(a), readFileSync(b)) === 0;
}
