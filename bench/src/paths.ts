// Where the bench finds the repository, the corpus, the CLI and its scratch space.
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** bench/dist/<file>.js -> repository root. */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const benchDir = join(repoRoot, 'bench');
export const cacheDir = join(benchDir, 'cache');
export const resultsDir = join(benchDir, 'results');
export const cliBin = join(repoRoot, 'packages', 'cli', 'bin', 'otadiff.js');

/** The ESP8266 AT corpus: OTADIFF_CORPUS, else the vendored corpus/esp8266-at. */
export function corpusDir(): string {
  const env = process.env.OTADIFF_CORPUS;
  return env !== undefined && env !== '' ? resolve(env) : resolve(repoRoot, 'corpus', 'esp8266-at');
}

export function ensureDir(dir: string): string {
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
  return dir;
}
