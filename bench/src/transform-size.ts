// The executable-aware transform (issue 15) in the size bench: per pair, ours without the transform
// (`--transform none`), ours with it (the default, `auto`), Debian's bsdiff, and a plain BCJ pre-filter
// before bsdiff; with each package's ramBytes and the in-process restore throughput with and without.
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chunkTransformed, parseHeader, type PatchMode } from '@otadiff/patch-apply';
import { bcjDecode, bcjEncode } from './bcj.js';
import { bytes, ratio, table } from './format.js';
import { measureThroughput, type ThroughputRow } from './inprocess.js';
import type { Pair } from './pairs.js';
import { sameFile, type Peer } from './peers.js';
import { run } from './proc.js';
import { diffArgs, geometricMean } from './sizes.js';

/** In-process passes per throughput figure (after a warm-up pass); kept short, the size bench is not the speed bench. */
const THROUGHPUT_BUDGET_MS = 300;
/** Rounds of the two packages' throughput, alternating, the best of each kept: load drift hits both. */
const THROUGHPUT_ROUNDS = 3;

export interface TransformedPackage {
  bytes: number;
  ramBytes: number;
  /** "thumb2 4/8" (kind, chunks transformed of all), or "none". */
  transform: string;
  speed: ThroughputRow;
}

export interface TransformSizeRow {
  pair: Pair;
  mode: PatchMode;
  plain: TransformedPackage;
  transformed: TransformedPackage;
  bsdiff: number;
  /** bsdiff of the BCJ-filtered images (Thumb-2 pairs only). */
  bcjBsdiff: number | null;
}

function ours(pair: Pair, mode: PatchMode, transform: 'none' | 'auto', path: string): Omit<TransformedPackage, 'speed'> & { path: string } {
  const json = JSON.parse(run(process.execPath, [...diffArgs(pair, mode, path), '--transform', transform]).stdout.toString()) as { patchBytes: number; ramBytes: number };
  if (statSync(path).size !== json.patchBytes) throw new Error(`otadiff diff reported ${json.patchBytes} bytes but wrote ${statSync(path).size}`);
  const h = parseHeader(new Uint8Array(readFileSync(path)));
  const used = h.chunks.filter((_c, i) => chunkTransformed(h.transform, i)).length;
  return { path, bytes: json.patchBytes, ramBytes: json.ramBytes, transform: h.transform === null ? 'none' : `${h.transform.kind} ${used}/${h.chunks.length}` };
}

/** Throughput of each package, alternating between them round by round; the best figures of each. */
function speeds(oldPath: string, paths: string[]): ThroughputRow[] {
  const best: (ThroughputRow | null)[] = paths.map(() => null);
  for (let round = 0; round < THROUGHPUT_ROUNDS; round++)
    paths.forEach((path, k) => {
      // measureThroughput checks the restore gives NEW.
      const r = measureThroughput(oldPath, path, THROUGHPUT_BUDGET_MS);
      const b = best[k];
      best[k] = b === null ? r : { ...r, applyMBps: Math.max(b.applyMBps, r.applyMBps), loopMBps: Math.max(b.loopMBps, r.loopMBps), lzmaMBps: Math.max(b.lzmaMBps, r.lzmaMBps), hashMBps: Math.max(b.hashMBps, r.hashMBps) };
    });
  return best as ThroughputRow[];
}

/** bsdiff (as the peer runs it) of the BCJ-filtered images; the patch is restored and unfiltered back to NEW. */
async function bcjBsdiff(pair: Pair, bsdiff: Peer, workDir: string, tag: string): Promise<number> {
  const [o, n, p, back] = ['old', 'new', 'patch', 'back'].map((s) => join(workDir, `${tag}.bcj.${s}`));
  writeFileSync(o, bcjEncode(new Uint8Array(readFileSync(pair.oldPath))));
  writeFileSync(n, bcjEncode(new Uint8Array(readFileSync(pair.newPath))));
  await bsdiff.make(o, n, p);
  await bsdiff.restore(o, p, back);
  writeFileSync(back, bcjDecode(new Uint8Array(readFileSync(back))));
  if (!sameFile(back, pair.newPath)) throw new Error(`BCJ + bsdiff did not restore NEW for ${pair.name}`);
  return statSync(p).size;
}

export async function measureTransformSizes(pair: Pair, thumb: boolean, bsdiff: Peer, workDir: string, tag: string, mode: PatchMode = 'inplace'): Promise<TransformSizeRow> {
  const patch = join(workDir, `${tag}.bsdiff`);
  const back = join(workDir, `${tag}.bsdiff.back`);
  await bsdiff.make(pair.oldPath, pair.newPath, patch);
  await bsdiff.restore(pair.oldPath, patch, back);
  if (!sameFile(back, pair.newPath)) throw new Error(`${bsdiff.label} did not restore NEW for ${pair.name}`);
  const plain = ours(pair, mode, 'none', join(workDir, `${tag}.${mode}.plain.otad`));
  const transformed = ours(pair, mode, 'auto', join(workDir, `${tag}.${mode}.auto.otad`));
  const [plainSpeed, transformedSpeed] = speeds(pair.oldPath, [plain.path, transformed.path]);
  return {
    pair,
    mode,
    plain: { bytes: plain.bytes, ramBytes: plain.ramBytes, transform: plain.transform, speed: plainSpeed },
    transformed: { bytes: transformed.bytes, ramBytes: transformed.ramBytes, transform: transformed.transform, speed: transformedSpeed },
    bsdiff: statSync(patch).size,
    bcjBsdiff: thumb ? await bcjBsdiff(pair, bsdiff, workDir, tag) : null,
  };
}

export interface TransformSummary {
  plainGeo: number;
  transformedGeo: number;
  bcjGeo: number;
}

export function summarizeTransformSizes(rows: TransformSizeRow[]): TransformSummary {
  const bcj = rows.filter((r) => r.bcjBsdiff !== null);
  return {
    plainGeo: geometricMean(rows.map((r) => r.plain.bytes / r.bsdiff)),
    transformedGeo: geometricMean(rows.map((r) => r.transformed.bytes / r.bsdiff)),
    bcjGeo: bcj.length === rows.length ? geometricMean(bcj.map((r) => r.bcjBsdiff! / r.bsdiff)) : NaN,
  };
}

/** Sizes (with ratios to bsdiff and their geometric means), then ramBytes and restore throughput. */
export function transformSizeTables(rows: TransformSizeRow[], bsdiffLabel: string): string {
  const s = summarizeTransformSizes(rows);
  const mb = (v: number) => v.toFixed(0);
  const sizes = table(
    ['pair', 'NEW', 'ours, no transform', 'ours, transform', 'transform (chunks)', bsdiffLabel, `BCJ + ${bsdiffLabel}`, 'no transform/bsdiff', 'transform/bsdiff', 'BCJ + bsdiff/bsdiff'],
    [
      ...rows.map((r) => [
        r.pair.name,
        bytes(r.pair.newSize),
        bytes(r.plain.bytes),
        bytes(r.transformed.bytes),
        r.transformed.transform,
        bytes(r.bsdiff),
        r.bcjBsdiff === null ? '–' : bytes(r.bcjBsdiff),
        ratio(r.plain.bytes / r.bsdiff),
        ratio(r.transformed.bytes / r.bsdiff),
        r.bcjBsdiff === null ? '–' : ratio(r.bcjBsdiff / r.bsdiff),
      ]),
      ['**geometric mean**', '', '', '', '', '', '', `**${ratio(s.plainGeo)}**`, `**${ratio(s.transformedGeo)}**`, `**${ratio(s.bcjGeo)}**`],
    ],
  );
  const speed = table(
    ['pair', 'ramBytes, no transform', 'ramBytes, transform', 'apply MB/s, no transform', 'apply MB/s, transform', 'chunk loop MB/s, no transform', 'chunk loop MB/s, transform'],
    rows.map((r) => [
      r.pair.name,
      bytes(r.plain.ramBytes),
      bytes(r.transformed.ramBytes),
      mb(r.plain.speed.applyMBps),
      mb(r.transformed.speed.applyMBps),
      mb(r.plain.speed.loopMBps),
      mb(r.transformed.speed.loopMBps),
    ]),
  );
  return `${sizes}\n\n${speed}`;
}

/**
 * The bench:size section for the transform: the micro:bit CODAL pairs (Thumb-2) and the ESP8266 AT
 * pairs (Xtensa), in place, split 64 KiB, dictionary 16 KiB. Needs a bsdiff to compare with.
 */
export async function transformSizeReport(peers: Peer[], workDir: string, log: (line: string) => void): Promise<string> {
  const bsdiff = peers.find((p) => p.id === 'bsdiff' && p.available) ?? peers.find((p) => p.id === 'bsdiff-node' && p.available);
  if (bsdiff === undefined) return '## Executable-aware transform\n\nNo bsdiff to compare with (apt-get install bsdiff).\n';
  const { espPairs, microbitPairs } = await import('./pairs.js');
  const sections: string[] = ['## Executable-aware transform (`--transform`)', ''];
  for (const [title, pairs, thumb] of [
    ['micro:bit CODAL (Cortex-M0 v1a/v1b, Cortex-M4 v2a/v2b): Thumb-2', microbitPairs(), true],
    ['ESP8266 AT: Xtensa', espPairs(), false],
  ] as const) {
    const rows: TransformSizeRow[] = [];
    for (const [i, pair] of pairs.entries()) {
      log(`${pair.name} (transform)…`);
      rows.push(await measureTransformSizes(pair, thumb, bsdiff, workDir, `t${thumb ? 'm' : 'e'}${i}`));
    }
    sections.push(`### ${title}`, '', transformSizeTables(rows, bsdiff.label), '');
  }
  sections.push(
    'In place, split 64 KiB, dictionary 16 KiB. "ours, transform" is `otadiff diff` as it is by default (`--transform auto`);',
    '"transform (chunks)" names the kind and how many chunks use it. BCJ + bsdiff: both images through a plain ARM-Thumb branch',
    'converter (BL offsets to absolute targets, the xz BCJ idea) before bsdiff; Thumb-2 pairs only. ramBytes is what',
    '`otadiff diff --json` declares; MB/s are in-process restores of the package (MB of NEW, best of passes for about',
    `${THROUGHPUT_BUDGET_MS} ms after a warm-up pass, the best of ${THROUGHPUT_ROUNDS} rounds alternating the two packages): the whole`,
    'applyPackage (with the pure-TypeScript SHA-256 of OLD, of the records and of NEW), and the chunk loop alone.',
    '',
  );
  return sections.join('\n');
}
