// `npm run bench [-- --quick]`: otadiff against the peer tools on the ESP8266 AT pairs, the micro:bit CODAL
// pairs and a multi-MB pair (and, in a full run, that pair repeated four times, for apply cost per MB).
// Writes bench/results/latest.md and bench/results/sizes.svg and prints the report.
import { cpus, loadavg } from 'node:os';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bytes, kib, ratio, seconds, table } from './format.js';
import { measureHeap, type HeapReport } from './heap.js';
import { measureThroughput, type ThroughputRow } from './inprocess.js';
import { readFileSync } from 'node:fs';
import { esbuildPair, espPairs, microbitPairs, type Pair } from './pairs.js';
import { ensureDir, resultsDir } from './paths.js';
import { detectPeers } from './peers.js';
import { measureScaling, repeatedPair, type ScalingRow } from './scaling.js';
import { sizeChart, sizeTable, summarizeSizes, type MeanRow } from './size-report.js';
import { measureWear, wearSummary, wearTable, wearTargets, type WearRow } from './wear.js';
import { DICT_SIZE, measureSizes, SPLIT_SIZE, type SizeRow } from './sizes.js';
import { measureTimes, type TimingRow } from './timing.js';

const quick = process.argv.includes('--quick');
const log = (s: string): void => void process.stderr.write(`${s}\n`);

/** Which corpus a pair is from: the size target is over the ESP8266 pairs, speed targets on the multi-MB pair. */
type Corpus = 'esp8266' | 'microbit' | 'big';

interface PairResult {
  pair: Pair;
  corpus: Corpus;
  size: SizeRow;
  time: TimingRow;
  speed: ThroughputRow;
  heap: HeapReport[];
  wear: WearRow[];
}

async function main(): Promise<void> {
  const peers = detectPeers();
  const missing = peers.filter((p) => !p.available);
  for (const p of missing) log(`peer missing: ${p.label} (${p.install}); its column is left out`);
  const pairs: { pair: Pair; corpus: Corpus }[] = [
    ...espPairs().map((pair) => ({ pair, corpus: 'esp8266' as const })),
    ...microbitPairs().map((pair) => ({ pair, corpus: 'microbit' as const })),
  ];
  let bigNote = '';
  if (!quick) {
    try {
      pairs.push({ pair: esbuildPair(), corpus: 'big' });
    } catch (e) {
      bigNote = `the multi-MB pair was skipped: ${(e as Error).message}`;
      log(bigNote);
    }
  } else bigNote = '--quick: the multi-MB pair was skipped';

  const loadBefore = loadavg()[0];
  const workDir = mkdtempSync(join(tmpdir(), 'otadiff-bench-'));
  const results: PairResult[] = [];
  const scaling: ScalingRow[] = [];
  try {
    for (const [i, { pair, corpus }] of pairs.entries()) {
      const tag = `p${i}`;
      // Diffs of the multi-MB pair take seconds each; applies are short, so more of them steady the minimum.
      const runs = quick ? { diff: 1, apply: 1 } : corpus !== 'big' ? { diff: 5, apply: 5 } : { diff: 3, apply: 9 };
      log(`[${i + 1}/${pairs.length}] ${pair.name}: sizes…`);
      const size = await measureSizes(pair, peers, workDir, tag);
      log(`[${i + 1}/${pairs.length}] ${pair.name}: process times (${runs.diff} diff and ${runs.apply} apply runs)…`);
      const time = measureTimes(pair, runs, workDir, tag);
      if (time.cliPatchBytes !== size.inplace.bytes)
        throw new Error(`otadiff diff made ${time.cliPatchBytes} bytes in the timing runs but ${size.inplace.bytes} earlier for ${pair.name}: was the build changed during the run?`);
      log(`[${i + 1}/${pairs.length}] ${pair.name}: in-process throughput…`);
      const speed = measureThroughput(pair.oldPath, size.inplace.path, quick ? 200 : 1000);
      log(`[${i + 1}/${pairs.length}] ${pair.name}: heap growth…`);
      const heap = [size.inplace, size.ab].map((p) => measureHeap(pair.oldPath, p.path, pair.newPath, join(workDir, `${tag}.${p.mode}.heap`)));
      log(`[${i + 1}/${pairs.length}] ${pair.name}: boot-side restore on every flash profile…`);
      const packages = { inplace: new Uint8Array(readFileSync(size.inplace.path)), ab: new Uint8Array(readFileSync(size.ab.path)) };
      const wear = measureWear(pair, corpus === 'esp8266' ? 'esp' : corpus, packages);
      results.push({ pair, corpus, size, time, speed, heap, wear });
    }
    const big = results.find((r) => r.corpus === 'big');
    if (big) {
      for (const factor of [1, 4]) {
        log(`apply cost per MB: ${big.pair.name} ×${factor}…`);
        scaling.push(measureScaling(factor === 1 ? big.pair : repeatedPair(big.pair, factor, workDir), factor, 5, workDir));
      }
    }
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }

  const load = `load average (1 min) ${loadBefore.toFixed(2)} at the start, ${loadavg()[0].toFixed(2)} at the end`;
  const report = render(results, scaling, peers, missing.map((p) => `${p.label} (${p.install})`), bigNote, load);
  ensureDir(resultsDir);
  writeFileSync(join(resultsDir, 'latest.md'), report);
  writeFileSync(join(resultsDir, 'sizes.svg'), sizeChart(results.map((r) => r.size), peers, corpusMeans(results)));
  process.stdout.write(report);
  log(`wrote ${join(resultsDir, 'latest.md')} and ${join(resultsDir, 'sizes.svg')}`);
}

/** The geometric-mean rows of the size table and chart: one per firmware corpus. */
function corpusMeans(results: PairResult[]): MeanRow[] {
  return [
    { label: 'geometric mean, ESP8266 pairs', rows: results.filter((r) => r.corpus === 'esp8266').map((r) => r.size) },
    { label: 'geometric mean, micro:bit pairs', rows: results.filter((r) => r.corpus === 'microbit').map((r) => r.size) },
  ];
}

function render(results: PairResult[], scaling: ScalingRow[], peers: ReturnType<typeof detectPeers>, missing: string[], bigNote: string, load: string): string {
  const runsNote = quick ? '1 run' : 'min of 5 runs (firmware pairs) / 3 diff runs and 9 apply runs (multi-MB pair)';
  const out: string[] = [];
  out.push(`# otadiff benchmark${quick ? ' (--quick)' : ''}`, '');
  out.push(`${new Date().toISOString()} · Node ${process.version} · ${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length} · ${process.platform}/${process.arch} · ${load}`, '');
  const props = [...new Set(results.flatMap((r) => [r.size.inplace, r.size.ab]).map((p) => `lc=${p.lzma.lc} lp=${p.lzma.lp} pb=${p.lzma.pb}`))].join(' / ');
  out.push(`otadiff packages (\`otadiff diff\`): split ${kib(SPLIT_SIZE)}, LZMA dictionary ${kib(DICT_SIZE)}, ${props} (read from the package headers).`);
  out.push(`Peers missing: ${missing.length === 0 ? 'none' : missing.join(', ')}.${bigNote ? ` Note: ${bigNote}.` : ''}`, '');

  out.push('## Package size (bytes)', '');
  out.push('Every patch, ours and each peer\'s, was restored once and compared with NEW.', '');
  out.push(sizeTable(results.map((r) => r.size), peers, ['bsdiff', 'bsdiff-node', 'xdelta3', 'zstd', 'xz'], corpusMeans(results)), '');

  out.push(`## Whole-process wall time (${runsNote}, interleaved, process start included)`, '');
  out.push(
    'The cold `otadiff apply` is a whole Node process: its floors are `node -e 0` (start-up alone) and `otadiff apply` of an ' +
      'OLD→OLD package (all but decoding). The apply target is the warm in-process apply beside it (host hashes, as the OTA service runs it).',
    '',
  );
  out.push(
    table(
      ['pair', 'otadiff diff', 'bsdiff', 'diff time ours/bsdiff', 'otadiff apply (cold process)', 'bspatch', 'cold apply throughput ours/bspatch', 'node -e 0 (start-up alone)', 'otadiff apply of an OLD→OLD package', 'warm in-process apply (host hashes)', 'warm apply throughput ours/bspatch'],
      results.map(({ pair, time: t, speed }) => [
        pair.name,
        seconds(t.oursDiff),
        seconds(t.bsdiff),
        ratio(t.bsdiff === null ? null : t.oursDiff / t.bsdiff),
        seconds(t.oursApply),
        seconds(t.bspatch),
        ratio(t.bspatch === null ? null : t.bspatch / t.oursApply),
        seconds(t.nodeStart),
        seconds(t.identityApply),
        seconds(speed.hostApplySeconds),
        ratio(t.bspatch === null ? null : t.bspatch / speed.hostApplySeconds),
      ]),
    ),
    '',
  );

  if (scaling.length > 0) {
    out.push('## Apply cost per MB (the multi-MB pair, and the same pair repeated four times)', '');
    out.push(
      'Min of 5 whole-process runs each, interleaved; the warm apply is the best in-process pass (host hashes). ' +
        '"per MB" divides by NEW in 10⁶ bytes; the cold apply\'s per-MB figure leaves out `node -e 0` (start-up is paid once, whatever the size).',
      '',
    );
    out.push(
      table(
        ['pair', 'NEW', 'bspatch', 'otadiff apply (cold)', 'node -e 0', 'warm in-process apply', 'bspatch per MB', 'cold apply minus start-up, per MB', 'warm apply per MB', 'warm ours/bspatch throughput'],
        scaling.map((r) => {
          const mb = r.pair.newSize / 1e6;
          const ms = (x: number) => `${((x * 1000) / mb).toFixed(2)} ms`;
          return [
            r.pair.name,
            bytes(r.pair.newSize),
            seconds(r.bspatch),
            seconds(r.coldApply),
            seconds(r.nodeStart),
            seconds(r.warmHostApply),
            r.bspatch === null ? 'n/a' : ms(r.bspatch),
            ms(r.coldApply - r.nodeStart),
            ms(r.warmHostApply),
            ratio(r.bspatch === null ? null : r.bspatch / r.warmHostApply),
          ];
        }),
      ),
      '',
    );
  }

  out.push('## In-process throughput (inplace package, best pass after a warm-up; MB = 10⁶ bytes of output)', '');
  out.push(
    table(
      ['pair', 'command stream / NEW', 'LZMA decode alone (MB of command stream)', 'chunk loop: LZMA + commands + CRC-32 (MB of NEW)', 'SHA-256 of OLD+NEW alone (MB of NEW)', 'whole apply (MB of NEW)'],
      results.map(({ pair, speed }) => [
        pair.name,
        ratio(speed.lzmaBytes / speed.newBytes),
        `${speed.lzmaMBps.toFixed(1)} MB/s`,
        `${speed.loopMBps.toFixed(1)} MB/s`,
        `${speed.hashMBps.toFixed(1)} MB/s`,
        `${speed.applyMBps.toFixed(1)} MB/s`,
      ]),
    ),
    '',
  );

  out.push('## Patcher memory: declared `ramBytes` vs measured live-heap growth', '');
  out.push(
    'Streaming patcher in a child process (`--expose-gc --no-flush-bytecode`), package fed from a file in 4 KiB pieces, source read from and chunks ' +
      'written to files, so no image-sized buffer exists. At every chunk: full `gc()` until two readings agree, then ' +
      '`heapUsed + arrayBuffers` minus the baseline taken right before the patcher was created; the largest growth counts. ' +
      '"cold" is the first apply in the process (compiling the patcher counts); "warm" the smallest peak of the next three applies ' +
      '(the JIT still allocates now and then, which only adds); "warm data" the same without V8\'s code spaces (JIT-compiled code), ' +
      'i.e. the patcher\'s typed arrays plus its JavaScript objects and the engine\'s metadata for them (hidden classes, feedback); ' +
      '"typed arrays" is `arrayBuffers` growth alone: every allocation whose size the package decides.',
    '',
  );
  out.push(
    table(
      ['pair', 'mode', 'chunks', 'ramBytes (declared)', 'growth cold', 'growth warm', 'warm data', 'warm data/declared', 'typed arrays', 'typed arrays/declared'],
      results.flatMap(({ pair, heap }) =>
        heap.map((h) => [
          pair.name,
          h.mode,
          String(h.chunks),
          bytes(h.ramBytes),
          bytes(h.coldGrowth),
          bytes(h.warmGrowth),
          bytes(h.dataGrowth),
          ratio(h.dataGrowth / h.ramBytes),
          bytes(h.arrayGrowth),
          ratio(h.arrayGrowth / h.ramBytes),
        ]),
      ),
    ),
    '',
  );
  out.push(`\`ramBytes\` printed by \`otadiff diff --json\` equals the streaming patcher's own figure (\`patcher.ramBytes\`): ${results.every((r) => r.heap.every((h, k) => h.ramBytes === [r.size.inplace, r.size.ab][k].ramBytes)) ? 'yes' : 'NO'}.`, '');

  const wear = results.flatMap((r) => r.wear);
  out.push('## Flash wear per update (boot-side restore on every flash profile, `npm run bench:wear` alone)', '');
  out.push(
    'One clean restore (no power cut) of each package by the bootloader state machine on each profile (`otadiff flash profiles`), after which the device must boot exactly NEW; ' +
      'the backup ring starts as an earlier update left it (not erased). Counts cover the whole restore: journal records, the backup ring (in place) and the image. ' +
      '"NEW sectors": sectors of the target slot holding NEW. Modelled time: the profile\'s typical erase and program times (reads and decoding not modelled).',
    '',
  );
  out.push(wearSummary(wear), '', wearTable(wear), '');

  out.push('## Targets', '', '```', ...targets(results, scaling, peers), ...wearTargets(wear), '```', '');
  return out.join('\n');
}

function line(ok: boolean | null, text: string): string {
  return `${ok === null ? 'NOT MEASURED' : ok ? 'PASS' : 'FAIL'}  ${text}`;
}

function targets(results: PairResult[], scaling: ScalingRow[], peers: ReturnType<typeof detectPeers>): string[] {
  const lines: string[] = [];
  const espRes = results.filter((r) => r.corpus === 'esp8266');
  const big = results.find((r) => r.corpus === 'big') ?? null;
  // (1) size
  const s = summarizeSizes(espRes.map((r) => r.size), peers);
  if (s.reference === null) lines.push(line(null, '(1) size: no bsdiff installed'));
  else
    lines.push(
      line(
        s.inplaceGeo <= 0.95 && s.abGeo < s.inplaceGeo,
        `(1) size: geometric mean over ${espRes.length} ESP8266 pairs of inplace/${s.reference.label} = ${ratio(s.inplaceGeo)} (target <= 0.95); ab/${s.reference.label} = ${ratio(s.abGeo)} (target < inplace)`,
      ),
    );
  // (2) diff time on the multi-MB pair
  if (big === null || big.time.bsdiff === null) lines.push(line(null, '(2) diff time: needs the multi-MB pair and bsdiff (not in this run)'));
  else {
    const r = big.time.oursDiff / big.time.bsdiff;
    lines.push(line(r <= 1, `(2) diff time on ${big.pair.name}: otadiff ${seconds(big.time.oursDiff)} / bsdiff ${seconds(big.time.bsdiff)} = ${ratio(r)}x (target <= 1.0x)`));
  }
  // (3a) apply throughput: the warm in-process apply (host hashes) against bspatch's whole process; the
  // cold CLI apply beside its floors, as information (a Node process's start-up is as long as bspatch's run).
  const applyBase = big ? [big] : espRes;
  const applyWhere = big ? big.pair.name : `the ${espRes.length} ESP8266 pairs (summed times)`;
  if (applyBase.some((r) => r.time.bspatch === null)) lines.push(line(null, '(3a) apply throughput: bspatch not installed'));
  else {
    const sum = (f: (r: PairResult) => number) => applyBase.reduce((a, r) => a + f(r), 0);
    const theirs = sum((r) => r.time.bspatch!);
    const warm = sum((r) => r.speed.hostApplySeconds);
    lines.push(
      line(
        big === null ? null : theirs / warm >= 1,
        `(3a) warm in-process apply (host hashes) on ${applyWhere}: ours/bspatch throughput = ${ratio(theirs / warm)}x (ours ${seconds(warm)}, bspatch's whole process ${seconds(theirs)}; target >= 1.0x on the multi-MB pair)`,
      ),
    );
    lines.push(
      `INFO  cold otadiff apply (whole process) on ${applyWhere}: ${seconds(sum((r) => r.time.oursApply))} = ${ratio(theirs / sum((r) => r.time.oursApply))}x bspatch; ` +
        `floors: node -e 0 ${seconds(sum((r) => r.time.nodeStart))}, an OLD→OLD package ${seconds(sum((r) => r.time.identityApply))}`,
    );
  }
  for (const r of scaling)
    lines.push(
      `INFO  apply cost on ${r.pair.name}: warm ${((r.warmHostApply * 1e3) / (r.pair.newSize / 1e6)).toFixed(2)} ms/MB, cold minus start-up ${(((r.coldApply - r.nodeStart) * 1e3) / (r.pair.newSize / 1e6)).toFixed(2)} ms/MB` +
        (r.bspatch === null ? '' : `, bspatch ${((r.bspatch * 1e3) / (r.pair.newSize / 1e6)).toFixed(2)} ms/MB`),
    );
  const speedBase = big ? [big] : espRes;
  const slowest = (f: (t: ThroughputRow) => number): string => Math.min(...speedBase.map((r) => f(r.speed))).toFixed(1);
  const minLoop = Math.min(...speedBase.map((r) => r.speed.loopMBps));
  // The issue's figure is the patch loop (LZMA decode + copy/diff/extra commands, with the per-chunk CRC);
  // the whole apply adds the pure-TypeScript SHA-256 of OLD, of the records and of NEW, reported beside it.
  lines.push(
    line(
      minLoop >= 100,
      `(3b) in-process patch loop (LZMA + commands + CRC-32) on ${big ? big.pair.name : 'the ESP8266 pairs (slowest)'}: ${minLoop.toFixed(1)} MB/s of NEW (target >= 100 MB/s); ` +
        `whole apply with pure-TypeScript SHA-256 ${slowest((t) => t.applyMBps)} MB/s, LZMA decode alone ${slowest((t) => t.lzmaMBps)} MB/s, SHA-256 of OLD+NEW alone ${slowest((t) => t.hashMBps)} MB/s`,
    ),
  );
  // (4) memory
  const heaps = results.flatMap((r) => r.heap);
  const worstBy = (f: (h: HeapReport) => number): number => Math.max(...heaps.map((h) => f(h) / h.ramBytes));
  const within = heaps.filter((h) => h.dataGrowth <= h.ramBytes).length;
  lines.push(
    line(
      within === heaps.length,
      `(4) heap growth (warm data) within the declared ramBytes in ${within}/${heaps.length} applies; worst ${ratio(worstBy((h) => h.dataGrowth))}x declared ` +
        `(heapUsed+arrayBuffers incl. JIT code: warm worst ${ratio(worstBy((h) => h.warmGrowth))}x, cold worst ${ratio(worstBy((h) => h.coldGrowth))}x; ` +
        `typed arrays alone: worst ${ratio(worstBy((h) => h.arrayGrowth))}x)`,
    ),
  );
  return lines;
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
