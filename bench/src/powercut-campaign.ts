// `npm run bench:powercut [-- --quick]`: the power-cut campaign on every flash profile. A small ESP8266 and a
// small micro:bit pair are cut at every flash operation of their restore, a large one of each at a seeded
// sample; torn operations (program-once units read back as random bytes), a second cut during every
// third resume. Every boot must be the old image intact or NEW complete. Writes bench/results/powercut.md.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyPackage, PROFILE_NAMES, runPowercut, type PowercutReport } from '@otadiff/patch-apply';
import { bytes, table } from './format.js';
import { espPairs, microbitPairs, type Pair } from './pairs.js';
import { ensureDir, resultsDir } from './paths.js';
import { wearPackages } from './wear.js';

const quick = process.argv.includes('--quick');
const log = (s: string): void => void process.stderr.write(`${s}\n`);
const SAMPLE = quick ? 60 : 300;

interface Case {
  pair: Pair;
  mode: 'inplace' | 'ab';
  /** undefined: every operation. */
  sample?: number;
}

function pick(pairs: Pair[], name: string): Pair {
  const p = pairs.find((x) => x.name.includes(name));
  if (p === undefined) throw new Error(`no pair named like ${name}`);
  return p;
}

async function main(): Promise<void> {
  const esp = espPairs();
  const mb = microbitPairs();
  const cases: Case[] = [
    { pair: pick(esp, 'v3.0.4→v3.0.5'), mode: 'inplace', sample: quick ? SAMPLE : undefined },
    { pair: pick(mb, 'v1a 7.0.6→8.1.32'), mode: 'inplace', sample: quick ? SAMPLE : undefined },
    { pair: pick(esp, 'v2.2.1→v3.0.2'), mode: 'inplace', sample: SAMPLE },
    { pair: pick(mb, 'v2b 4.0.24→7.0.6'), mode: 'inplace', sample: SAMPLE },
    { pair: pick(esp, 'v3.0.5→v3.0.6'), mode: 'ab', sample: SAMPLE },
  ];
  const rows: { c: Case; profile: string; r: PowercutReport; seconds: number }[] = [];
  for (const c of cases) {
    const pkgs = await wearPackages(c.pair);
    const old = new Uint8Array(readFileSync(c.pair.oldPath));
    const pkg = pkgs[c.mode];
    const neu = applyPackage(old, pkg).image;
    for (const profile of PROFILE_NAMES) {
      const t0 = performance.now();
      const r = runPowercut(old, neu, pkg, { profile, sample: c.sample, seed: 16, tear: 'random', doubleCutEvery: 3 });
      const seconds = (performance.now() - t0) / 1000;
      log(`${c.pair.name} ${c.mode} on ${profile}: ${r.cuts} cuts of ${r.operations} operations, ${r.recovered} recovered, ${r.failed} failed (${seconds.toFixed(0)} s)`);
      for (const f of r.failures.slice(0, 3)) log(`  FAILED at op ${f.op}: ${f.detail}`);
      rows.push({ c, profile, r, seconds });
    }
  }
  const cuts = rows.reduce((n, x) => n + x.r.cuts, 0);
  const failed = rows.reduce((n, x) => n + x.r.failed, 0);
  const md = [
    '# Power-cut campaign',
    '',
    `${new Date().toISOString()} · Node ${process.version}. Tear 'random' (program-once units torn per unit: done, untouched or undefined, an undefined unit reading back as fresh random bytes), ` +
      `a second cut during every third resume, seed 16. "every" = a cut at each flash operation (program or erase) of a clean restore; otherwise a seeded sample.`,
    '',
    '```',
    `${failed === 0 ? 'PASS' : 'FAIL'}  ${cuts - failed} of ${cuts} cuts recovered on ${PROFILE_NAMES.length} profiles (target: all)`,
    '```',
    '',
    table(
      ['pair', 'mode', 'flash', 'operations', 'cuts', 'double cuts', 'recovered', 'failed', 'time'],
      rows.map(({ c, profile, r, seconds }) => [
        c.pair.name,
        c.mode,
        profile,
        bytes(r.operations),
        `${bytes(r.cuts)}${c.sample === undefined ? ' (every)' : ''}`,
        bytes(r.doubleCuts),
        bytes(r.recovered),
        bytes(r.failed),
        `${seconds.toFixed(0)} s`,
      ]),
    ),
    '',
  ].join('\n');
  ensureDir(resultsDir);
  writeFileSync(join(resultsDir, 'powercut.md'), md);
  process.stdout.write(md);
  if (failed > 0) process.exitCode = 1;
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:powercut failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
