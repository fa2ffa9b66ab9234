// The image pairs the bench diffs: consecutive ESP8266 AT releases, consecutive micro:bit CODAL runtimes
// and one multi-MB executable pair.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { MICROBIT_VARIANTS, MICROBIT_VERSIONS, ensureMicrobitCorpus, esbuildBinary, microbitImage } from './corpus.js';
import { corpusDir } from './paths.js';

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

/** Consecutive pxt-microbit versions of each micro:bit runtime build (Cortex-M0 v1a/v1b, Cortex-M4 v2a/v2b). */
export function microbitPairs(): Pair[] {
  ensureMicrobitCorpus((line) => process.stderr.write(`${line}\n`));
  const out: Pair[] = [];
  for (const variant of MICROBIT_VARIANTS)
    for (let i = 1; i < MICROBIT_VERSIONS.length; i++) {
      const from = MICROBIT_VERSIONS[i - 1];
      const to = MICROBIT_VERSIONS[i];
      out.push(pair(`microbit ${variant} ${from}→${to}`, microbitImage(variant, from), microbitImage(variant, to)));
    }
  return out;
}

const ESBUILD_OLD = '0.23.0';
const ESBUILD_NEW = '0.23.1';

/** The ~9.5 MB ARM executables of esbuild 0.23.0 and 0.23.1 (fetched into bench/cache on first use, pinned). */
export function esbuildPair(): Pair {
  const log = (line: string) => process.stderr.write(`${line}\n`);
  return pair(`esbuild linux-arm ${ESBUILD_OLD}→${ESBUILD_NEW}`, esbuildBinary(ESBUILD_OLD, log), esbuildBinary(ESBUILD_NEW, log));
}
