// `npm run bench:size`: package sizes on the ESP8266 AT pairs (Xtensa) and the micro:bit CODAL pairs
// (Cortex-M0/M4): ours inplace/ab, bsdiff, xz -9e of NEW, every patch restored and compared with NEW.
// Prints the markdown table and writes it to bench/results/sizes.md.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { espPairs, microbitPairs, type Pair } from './pairs.js';
import { ensureDir, resultsDir } from './paths.js';
import { detectPeers } from './peers.js';
import { sizeTable } from './size-report.js';
import { measureSizes, type SizeRow } from './sizes.js';
import { transformSizeReport } from './transform-size.js';

async function main(): Promise<void> {
  const wanted = ['bsdiff', 'xz'];
  const all = detectPeers();
  // bsdiff-node stands in for bsdiff's column only when Debian's bsdiff is missing.
  const useNode = !all.some((p) => p.id === 'bsdiff' && p.available);
  const peers = all.filter((p) => wanted.includes(p.id) || (useNode && p.id === 'bsdiff-node'));
  const missing = peers.filter((p) => !p.available).map((p) => `${p.label} (${p.install})`);
  const workDir = mkdtempSync(join(tmpdir(), 'otadiff-size-'));
  const corpora: { label: string; pairs: Pair[]; rows: SizeRow[] }[] = [
    { label: 'geometric mean, ESP8266', pairs: espPairs(), rows: [] },
    { label: 'geometric mean, micro:bit', pairs: microbitPairs(), rows: [] },
  ];
  let transform = '';
  try {
    for (const c of corpora)
      for (const pair of c.pairs) {
        process.stderr.write(`${pair.name}…\n`);
        c.rows.push(await measureSizes(pair, peers, workDir, `s${c.rows.length}${c.label.length}`));
      }
    transform = await transformSizeReport(all, workDir, (line) => process.stderr.write(`${line}\n`));
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
  const md = [
    '# otadiff package size, ESP8266 AT and micro:bit CODAL pairs',
    '',
    'Split 64 KiB, LZMA dictionary 16 KiB. Ratios are ours/bsdiff; the last rows are their geometric means per corpus.',
    'Every patch (ours and each peer\'s) was restored and compared with NEW.',
    ...(missing.length ? [`Missing: ${missing.join(', ')}.`] : []),
    '',
    sizeTable(corpora.flatMap((c) => c.rows), peers, ['bsdiff', 'bsdiff-node', 'xz'], corpora),
    '',
    transform,
  ].join('\n');
  ensureDir(resultsDir);
  writeFileSync(join(resultsDir, 'sizes.md'), md);
  process.stdout.write(md);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:size failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
