// The image pairs the bench diffs: consecutive ESP8266 AT releases and one multi-MB executable pair.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir, corpusDir, ensureDir } from './paths.js';

export interface Pair {
  name: string;
  oldPath: string;
  newPath: string;
  oldSize: number;
  newSize: number;
}

function versionKey(file: string): number[] {
  const m = /v(\d+)\.(\d+)\.(\d+)/.exec(file);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [];
}

function compareVersions(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? -1) - (b[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}

function pair(name: string, oldPath: string, newPath: string): Pair {
  return { name, oldPath, newPath, oldSize: statSync(oldPath).size, newSize: statSync(newPath).size };
}

/** Every consecutive pair of at-v*.bin, in version order. */
export function espPairs(): Pair[] {
  const dir = corpusDir();
  if (!existsSync(dir)) throw new Error(`ESP8266 corpus not found at ${dir} (set OTADIFF_CORPUS)`);
  const files = readdirSync(dir)
    .filter((f) => /^at-v\d+\.\d+\.\d+\.bin$/.test(f))
    .sort((a, b) => compareVersions(versionKey(a), versionKey(b)));
  if (files.length < 2) throw new Error(`need at least two at-v*.bin files in ${dir}`);
  const out: Pair[] = [];
  for (let i = 1; i < files.length; i++) {
    const from = files[i - 1].replace(/^at-|\.bin$/g, '');
    const to = files[i].replace(/^at-|\.bin$/g, '');
    out.push(pair(`esp8266-at ${from}→${to}`, join(dir, files[i - 1]), join(dir, files[i])));
  }
  return out;
}

const ESBUILD_PACKAGE = '@esbuild/linux-arm';
const ESBUILD_OLD = '0.23.0';
const ESBUILD_NEW = '0.23.1';

/** `bin/esbuild` of one @esbuild/linux-arm version, fetched with `npm pack` into bench/cache on first use. */
function esbuildBinary(version: string): string {
  const dir = ensureDir(join(cacheDir, `esbuild-linux-arm-${version}`));
  const bin = join(dir, 'package', 'bin', 'esbuild');
  if (existsSync(bin)) return bin;
  const tarball = join(cacheDir, `esbuild-linux-arm-${version}.tgz`);
  if (!existsSync(tarball)) {
    process.stderr.write(`fetching ${ESBUILD_PACKAGE}@${version} with npm pack…\n`);
    execFileSync('npm', ['pack', `${ESBUILD_PACKAGE}@${version}`, '--silent'], { cwd: cacheDir, stdio: ['ignore', 'ignore', 'inherit'] });
  }
  if (!existsSync(tarball)) throw new Error(`npm pack did not produce ${tarball}`);
  execFileSync('tar', ['-xzf', tarball, '-C', dir, 'package/bin/esbuild']);
  if (!existsSync(bin)) throw new Error(`${tarball} has no package/bin/esbuild`);
  return bin;
}

/** The ~9.5 MB ARM executables of esbuild 0.23.0 and 0.23.1. */
export function esbuildPair(): Pair {
  ensureDir(cacheDir);
  return pair(`esbuild linux-arm ${ESBUILD_OLD}→${ESBUILD_NEW}`, esbuildBinary(ESBUILD_OLD), esbuildBinary(ESBUILD_NEW));
}
