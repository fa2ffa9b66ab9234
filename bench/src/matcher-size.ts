// Matcher quality: for each consecutive pair of firmware images, match every chunk
// in ab and inplace mode, serialise the ops with the package encoder (encodeCommands)
// (varint copy length, diff bytes, varint extra length, literals, zigzag seek),
// LZMA1-compress each chunk's stream with a 16 KiB dictionary, and compare the
// total with Debian's bsdiff (bzip2) when it is installed.
//
//   node bench/dist/matcher-size.js [corpusDir] [--split N] [--candidates N] [--margin N] [--min-match N]
//     [--mismatch-cost X] [--far-margin N] [--far-distance N] [--min-far-copy N] [--max-compare N]
//     [--dict N] [--lc N] [--lp N] [--pb N]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildSuffixArray, compressRaw, encodeCommands, matchChunk, type ChunkWindow, type SourceIndex } from '@otadiff/diff-gen';
import { espDir } from './corpus.js';

type Mode = 'ab' | 'inplace';

const DICT_SIZE = 16 * 1024;
/** LZMA properties for the measurement (the package's defaults; --dict/--lc/--lp/--pb override). */
const props = { dictSize: DICT_SIZE, lc: 1, lp: 0, pb: 0 };

/** The generator's compressor: lzma-native with an honest `dictSize` (a `dict_size` key would be ignored). */
async function lzmaCompress(data: Uint8Array, dictSize = props.dictSize): Promise<number> {
  return (await compressRaw(data, { lc: props.lc, lp: props.lp, pb: props.pb, dictSize })).length;
}

/** Whether the 16 KiB dictionary is really used: a repeat 20 KiB back must not be found. */
async function checkDictHonoured(): Promise<void> {
  const block = new Uint8Array(20_000);
  let s = 7;
  for (let i = 0; i < block.length; i++) block[i] = (s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 24;
  const twice = new Uint8Array(40_000);
  twice.set(block, 0);
  twice.set(block, 20_000);
  const small = await lzmaCompress(twice, DICT_SIZE);
  const big = await lzmaCompress(twice, 1 << 20);
  if (!(small > 38_000 && big < 22_000)) throw new Error(`LZMA dictionary size not honoured (${small} vs ${big})`);
}

interface PairResult {
  ours: number;
  ops: number;
  ms: number;
}

async function measure(
  oldImg: Uint8Array,
  newImg: Uint8Array,
  oldIdx: SourceIndex,
  newIdx: SourceIndex,
  mode: Mode,
  split: number,
  tuning: Record<string, number>,
): Promise<PairResult> {
  let ours = 0;
  let opCount = 0;
  let ms = 0;
  for (let start = 0; start < newImg.length; start += split) {
    const target = newImg.subarray(start, Math.min(newImg.length, start + split));
    const boundary = mode === 'inplace' ? start : 0;
    const window: ChunkWindow = {
      old: oldIdx,
      newer: boundary > 0 ? newIdx : undefined,
      boundary,
      length: Math.max(boundary, oldImg.length),
    };
    const t0 = performance.now();
    const ops = matchChunk(target, window, { ...tuning, startPos: Math.min(start, window.length) });
    ms += performance.now() - t0;
    opCount += ops.length;
    ours += await lzmaCompress(encodeCommands(ops, target, window, Math.min(start, window.length)));
  }
  return { ours, ops: opCount, ms };
}

function bsdiffSize(oldPath: string, newPath: string): number | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'matcher-size-'));
  try {
    execFileSync('bsdiff', [oldPath, newPath, join(dir, 'p')], { stdio: 'ignore' });
    return statSync(join(dir, 'p')).size;
  } catch {
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function versionKey(name: string): number[] {
  return (name.match(/\d+/g) ?? []).map(Number);
}

function compareVersions(a: string, b: string): number {
  const x = versionKey(a);
  const y = versionKey(b);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? -1) - (y[i] ?? -1);
    if (d !== 0) return d;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

const geomean = (xs: number[]): number => Math.exp(xs.reduce((s, x) => s + Math.log(x), 0) / xs.length);

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const flag = (name: string): number | undefined => {
    const i = args.indexOf(name);
    if (i < 0) return undefined;
    const v = Number(args[i + 1]);
    args.splice(i, 2);
    if (!Number.isFinite(v) || v < 0) throw new Error(`${name} needs a non-negative number`);
    return v;
  };
  const split = flag('--split') ?? 64 * 1024;
  props.dictSize = flag('--dict') ?? props.dictSize;
  props.lc = flag('--lc') ?? props.lc;
  props.lp = flag('--lp') ?? props.lp;
  props.pb = flag('--pb') ?? props.pb;
  const tuning: Record<string, number> = {};
  for (const [f, k] of [
    ['--candidates', 'maxCandidates'],
    ['--margin', 'switchMargin'],
    ['--min-match', 'minMatch'],
    ['--mismatch-cost', 'mismatchCost'],
    ['--far-margin', 'farSwitchMargin'],
    ['--far-distance', 'farDistance'],
    ['--min-far-copy', 'minFarCopy'],
    ['--max-compare', 'maxCompare'],
  ] as const) {
    const v = flag(f);
    if (v !== undefined) tuning[k] = v;
  }
  const dir = args[0] ?? espDir;
  const files = readdirSync(dir)
    .filter((f) => /^at-v.*\.bin$/.test(f))
    .sort(compareVersions);
  if (files.length < 2) throw new Error(`need at least two at-v*.bin images in ${dir}`);

  await checkDictHonoured();
  const rows: string[][] = [['pair', 'bsdiff', 'ab', 'ab/bs', 'inplace', 'ip/bs', 'SA ms', 'match ms (ab/ip)', 'ops (ab/ip)']];
  const ratios: Record<Mode, number[]> = { ab: [], inplace: [] };
  for (let i = 0; i + 1 < files.length; i++) {
    const oldPath = join(dir, files[i]);
    const newPath = join(dir, files[i + 1]);
    const oldImg = new Uint8Array(readFileSync(oldPath));
    const newImg = new Uint8Array(readFileSync(newPath));
    const t0 = performance.now();
    const oldIdx: SourceIndex = { data: oldImg, sa: buildSuffixArray(oldImg) };
    const newIdx: SourceIndex = { data: newImg, sa: buildSuffixArray(newImg) };
    const saMs = (performance.now() - t0) / 2;
    const ab = await measure(oldImg, newImg, oldIdx, newIdx, 'ab', split, tuning);
    const ip = await measure(oldImg, newImg, oldIdx, newIdx, 'inplace', split, tuning);
    const bs = bsdiffSize(oldPath, newPath);
    const pair = `${files[i].replace(/^at-v|\.bin$/g, '')} -> ${files[i + 1].replace(/^at-v|\.bin$/g, '')}`;
    if (bs !== undefined) {
      ratios.ab.push(ab.ours / bs);
      ratios.inplace.push(ip.ours / bs);
    }
    rows.push([
      pair,
      bs === undefined ? 'n/a' : String(bs),
      String(ab.ours),
      bs === undefined ? '-' : (ab.ours / bs).toFixed(3),
      String(ip.ours),
      bs === undefined ? '-' : (ip.ours / bs).toFixed(3),
      saMs.toFixed(0),
      `${ab.ms.toFixed(0)}/${ip.ms.toFixed(0)}`,
      `${ab.ops}/${ip.ops}`,
    ]);
  }
  if (ratios.ab.length > 0) {
    rows.push(['geomean', '', '', geomean(ratios.ab).toFixed(3), '', geomean(ratios.inplace).toFixed(3), '', '', '']);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) console.log(r.map((cell, c) => cell.padStart(widths[c])).join('  '));
  console.log(`split ${split}, LZMA1 ${JSON.stringify(props)}, matcher tuning ${JSON.stringify(tuning)}`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
