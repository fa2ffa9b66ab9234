// The firmware corpus the demo, tests and benchmarks read, all inside the repository:
// - corpus/esp8266-at/: Espressif's ESP8266 AT images, vendored (MIT licence, SHA256SUMS beside them);
// - corpus/microbit-codal/: micro:bit CODAL runtime images (Cortex-M0 and M4), fetched from the npm
//   package pxt-microbit (built/hexcache/*.hex), turned into flat images by our Intel HEX reader and
//   checked against the committed SHA256SUMS; cached there (git-ignored) and reused offline;
// - bench/cache/: the multi-MB esbuild executables for the bench, fetched the same way.
// Every fetched byte is pinned: the npm tarball by its sha512 integrity, each image by its SHA-256.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { readIntelHex } from '@otadiff/diff-gen';
import { cacheDir, repoRoot } from './paths.js';

export const corpusRoot = join(repoRoot, 'corpus');
export const espDir = join(corpusRoot, 'esp8266-at');
export const microbitDir = join(corpusRoot, 'microbit-codal');

/** A fetch that failed: one line naming the package, for an `error: …` line. */
export class CorpusError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CorpusError';
  }
}

/** pxt-microbit versions and their tarballs' npm integrity (sha512), pinned. */
const PXT_MICROBIT: Record<string, string> = {
  '4.0.24': 'sha512-lgyDSfaiI/JVaXcO7drLGWsw7RAh+5Mjxam5GcvF/bUdLB0qmuHtq9pGJN7vJmy1x+JGqUwa2JI+OeDyRkl69w==',
  '7.0.6': 'sha512-hQV0/aVN8vy2RG2KCUI0Z7P8tFYek/rVRluWZUcHelE8qUg8q4tYEMmS5/wjNnDpSR8SDYW64iGQ88SmjCoSHA==',
  '8.1.32': 'sha512-7f0gQcwnabx4szJDZSnPb2tzmCkuTRUwzkpRnWutQujspECcaNq0xpFeTXNa+s30MXkkb5EzFmcO8EBXSbkZZA==',
};
export const MICROBIT_VERSIONS = ['4.0.24', '7.0.6', '8.1.32'] as const;
/** The four runtime builds (V1 nRF51822 Cortex-M0: v1a, v1b; V2 nRF52833 Cortex-M4: v2a, v2b). */
export const MICROBIT_VARIANTS = ['v1a', 'v1b', 'v2a', 'v2b'] as const;
/** Which hexcache file (by the first 8 characters of its name) is which variant in which version. */
const HEXCACHE_KEYS: Record<string, string> = {
  '02e34856': 'v1a-4.0.24', '8259ae91': 'v1a-7.0.6', '949fbd03': 'v1a-8.1.32',
  '447fa4d5': 'v1b-4.0.24', 'ee29de97': 'v1b-7.0.6', '4cc31a5b': 'v1b-8.1.32',
  '8e4d117f': 'v2a-4.0.24', '00c4ca2c': 'v2a-7.0.6', '354b97da': 'v2a-8.1.32',
  '19fa3608': 'v2b-4.0.24', '018e467a': 'v2b-7.0.6', '8b83cd59': 'v2b-8.1.32',
};

/** `name  sha256` lines of a SHA256SUMS file, as name -> hex digest. */
export function readSums(dir: string): Map<string, string> {
  const sums = new Map<string, string>();
  for (const line of readFileSync(join(dir, 'SHA256SUMS'), 'utf8').split('\n')) {
    const m = /^([0-9a-f]{64})\s+\*?(\S+)$/.exec(line.trim());
    if (m) sums.set(m[2], m[1]);
  }
  return sums;
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** True when `path` exists and hashes to `digest`. */
function intact(path: string, digest: string): boolean {
  return existsSync(path) && sha256(readFileSync(path)) === digest;
}

function writeAtomic(path: string, data: Uint8Array): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

/** `npm pack` of spec into dir, checked against its pinned sha512 integrity; returns the tarball's path. */
function npmPack(spec: string, integrity: string, dir: string): string {
  try {
    execFileSync('npm', ['pack', spec, '--loglevel=error'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    // npm's first own line of error text (not its code/errno lines, nor a stack trace).
    const why = String((e as { stderr?: Buffer }).stderr ?? '')
      .split('\n')
      .map((l) => l.replace(/^npm (error|ERR!) ?/, ''))
      .find((l) => l.trim() !== '' && !/^(code|syscall|errno) /.test(l) && !/^\s/.test(l));
    throw new CorpusError(`cannot fetch ${spec} from the npm registry${why ? `: ${why.trim()}` : ''}`);
  }
  const tgz = readdirSync(dir).find((f) => f.endsWith('.tgz'));
  if (!tgz) throw new CorpusError(`npm pack ${spec} wrote no tarball`);
  const path = join(dir, tgz);
  const got = `sha512-${createHash('sha512').update(readFileSync(path)).digest('base64')}`;
  if (got !== integrity) throw new CorpusError(`${spec}: the tarball's sha512 is ${got}, not the pinned ${integrity}`);
  return path;
}

/** Files of the micro:bit corpus: `<variant>-<version>.bin` (flat image) and `hex/<variant>-<version>.hex`. */
export function microbitImage(variant: string, version: string): string {
  return join(microbitDir, `${variant}-${version}.bin`);
}
export function microbitHex(variant: string, version: string): string {
  return join(microbitDir, 'hex', `${variant}-${version}.hex`);
}

/**
 * Makes sure every micro:bit image is in `dir` (corpus/microbit-codal, whose SHA256SUMS pins them) with
 * its pinned SHA-256, fetching the pxt-microbit versions whose images are missing or damaged. Offline
 * once fetched. Returns the folder.
 */
export function ensureMicrobitCorpus(log: (line: string) => void = () => {}, dir = microbitDir): string {
  const sums = readSums(dir);
  for (const version of MICROBIT_VERSIONS) {
    const names = MICROBIT_VARIANTS.map((v) => `${v}-${version}`);
    const ok = names.every((n) => intact(join(dir, `${n}.bin`), sums.get(`${n}.bin`) ?? '') && existsSync(join(dir, 'hex', `${n}.hex`)));
    if (ok) continue;
    const spec = `pxt-microbit@${version}`;
    log(`fetching ${spec} from the npm registry…`);
    const tmp = mkdtempSync(join(tmpdir(), 'otadiff-corpus-'));
    try {
      const tgz = npmPack(spec, PXT_MICROBIT[version], tmp);
      try {
        execFileSync('tar', ['-xzf', tgz, '-C', tmp, 'package/built/hexcache'], { stdio: ['ignore', 'ignore', 'pipe'] });
      } catch {
        throw new CorpusError(`${spec}: its tarball has no package/built/hexcache`);
      }
      const hexDir = join(tmp, 'package', 'built', 'hexcache');
      mkdirSync(join(dir, 'hex'), { recursive: true });
      const found = new Set<string>();
      for (const file of readdirSync(hexDir)) {
        const name = HEXCACHE_KEYS[basename(file).slice(0, 8)];
        if (!name || !name.endsWith(`-${version}`)) continue;
        const text = readFileSync(join(hexDir, file));
        const { bytes } = readIntelHex(text);
        const want = sums.get(`${name}.bin`);
        if (sha256(bytes) !== want) throw new CorpusError(`${spec}: ${name}.bin hashes to ${sha256(bytes)}, not the pinned ${want}`);
        writeAtomic(join(dir, 'hex', `${name}.hex`), text);
        writeAtomic(join(dir, `${name}.bin`), bytes);
        found.add(name);
      }
      const lacking = names.filter((n) => !found.has(n));
      if (lacking.length) throw new CorpusError(`${spec} has no hexcache image for ${lacking.join(', ')}`);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  return dir;
}

/** The esbuild executables the bench uses as its multi-MB pair, pinned. */
export const ESBUILD_PACKAGE = '@esbuild/linux-arm';
const ESBUILD: Record<string, { integrity: string; sha256: string }> = {
  '0.23.0': {
    integrity: 'sha512-SEELSTEtOFu5LPykzA395Mc+54RMg1EUgXP+iw2SJ72+ooMwVsgfuwXo5Fn0wXNgWZsTVHwY2cg4Vi/bOD88qw==',
    sha256: '6df20fb24fa7d522cfb88a2301a82aa176a7fddbe15ed9bd2c72e9a9d3c8e30b',
  },
  '0.23.1': {
    integrity: 'sha512-CXXkzgn+dXAPs3WBwE+Kvnrf4WECwBdfjfeYHpMeVxWE0EceB6vhWGShs6wi0IYEqMSIzdOF1XjQ/Mkm5d7ZdQ==',
    sha256: '1024f18fed4745c707e1516bd1b86b6a24a9e2bd4b797b2960ea9c3135cfdc12',
  },
};

/** `bin/esbuild` of one @esbuild/linux-arm version, in bench/cache (fetched on first use, then offline). */
export function esbuildBinary(version: string, log: (line: string) => void = () => {}): string {
  const pin = ESBUILD[version];
  if (!pin) throw new CorpusError(`no pinned ${ESBUILD_PACKAGE}@${version}`);
  const dir = join(cacheDir, `esbuild-linux-arm-${version}`);
  const bin = join(dir, 'esbuild');
  if (intact(bin, pin.sha256)) return bin;
  const spec = `${ESBUILD_PACKAGE}@${version}`;
  log(`fetching ${spec} from the npm registry…`);
  mkdirSync(dir, { recursive: true });
  const tmp = mkdtempSync(join(tmpdir(), 'otadiff-corpus-'));
  try {
    const tgz = npmPack(spec, pin.integrity, tmp);
    try {
      execFileSync('tar', ['-xzf', tgz, '-C', tmp, 'package/bin/esbuild'], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch {
      throw new CorpusError(`${spec}: its tarball has no package/bin/esbuild`);
    }
    const bytes = readFileSync(join(tmp, 'package', 'bin', 'esbuild'));
    if (sha256(bytes) !== pin.sha256) throw new CorpusError(`${spec}: bin/esbuild hashes to ${sha256(bytes)}, not the pinned ${pin.sha256}`);
    writeAtomic(bin, bytes);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return bin;
}
