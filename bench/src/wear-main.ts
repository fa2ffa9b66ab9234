// `npm run bench:wear [-- --quick]`: flash wear and modelled restore time of one update on every flash profile,
// for the ESP8266 AT pairs, the micro:bit CODAL pairs and (without --quick) the multi-MB pair, in place and A/B.
// Writes bench/results/wear.md and prints it.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { esbuildPair, espPairs, microbitPairs, type Pair } from './pairs.js';
import { ensureDir, resultsDir } from './paths.js';
import { measureWear, wearPackages, wearSummary, wearTable, wearTargets, type PairGroup, type WearRow } from './wear.js';
import { DICT_SIZE, SPLIT_SIZE } from './sizes.js';

const quick = process.argv.includes('--quick');
const log = (s: string): void => void process.stderr.write(`${s}\n`);

async function main(): Promise<void> {
  const pairs: { pair: Pair; group: PairGroup }[] = [
    ...espPairs().map((pair) => ({ pair, group: 'esp' as const })),
    ...microbitPairs().map((pair) => ({ pair, group: 'microbit' as const })),
  ];
  let note = '';
  if (!quick) {
    try {
      pairs.push({ pair: esbuildPair(), group: 'big' });
    } catch (e) {
      note = `the multi-MB pair was skipped: ${(e as Error).message}`;
      log(note);
    }
  } else note = '--quick: the multi-MB pair was skipped';
  const rows: WearRow[] = [];
  for (const [i, { pair, group }] of pairs.entries()) {
    log(`[${i + 1}/${pairs.length}] ${pair.name}: packages…`);
    const pkgs = await wearPackages(pair);
    log(`[${i + 1}/${pairs.length}] ${pair.name}: restores on every profile…`);
    rows.push(...measureWear(pair, group, pkgs));
  }
  const md = [
    '# Flash wear and modelled restore time of one update',
    '',
    `${new Date().toISOString()} · Node ${process.version}. Packages: split ${SPLIT_SIZE / 1024} KiB, dictionary ${DICT_SIZE / 1024} KiB. ` +
      'One clean restore per package by the bootloader state machine on each flash profile (`otadiff flash profiles`), after which the device must boot exactly NEW; ' +
      'the backup ring starts as an earlier update left it (not erased). "NEW sectors": sectors of the target slot holding NEW. ' +
      'Modelled time: the profile\'s typical erase and program times for the operations counted (reads and decoding not modelled).' +
      (note ? ` Note: ${note}.` : ''),
    '',
    '## Targets',
    '',
    '```',
    ...wearTargets(rows),
    '```',
    '',
    '## Summary',
    '',
    wearSummary(rows),
    '',
    '## Every pair',
    '',
    wearTable(rows),
    '',
  ].join('\n');
  ensureDir(resultsDir);
  writeFileSync(join(resultsDir, 'wear.md'), md);
  process.stdout.write(md);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:wear failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
