// Flash wear and modelled time of one update, per pair, flash profile and mode: the boot-side restore run
// by its own power-cut harness without a cut (runPowercut, sample 0), which also checks that the device
// then boots exactly NEW. The backup ring starts as an earlier update left it (not erased), so the erases
// are those of a device in service.
import { readFileSync } from 'node:fs';
import { generatePackage } from '@otadiff/diff-gen';
import { PROFILE_NAMES, runPowercut, type PatchMode } from '@otadiff/patch-apply';
import { bytes, ratio, table } from './format.js';
import type { Pair } from './pairs.js';
import { DICT_SIZE, SPLIT_SIZE } from './sizes.js';

export type PairGroup = 'esp' | 'microbit' | 'big';

export interface WearRow {
  pair: string;
  group: PairGroup;
  profile: string;
  mode: PatchMode;
  operations: number;
  erases: number;
  newSectors: number;
  erasesPerNewSector: number;
  maxErasesPerSector: number;
  bytesProgrammed: number;
  newBytes: number;
  /** In place: sectors of NEW equal in OLD at the same offset, and how often they were erased. */
  unchangedSectors: number;
  unchangedSectorErases: number;
  restoreMs: number | null;
}

/** The pair's inplace and ab packages (the bench's split and dictionary), made in this process. */
export async function wearPackages(pair: Pair): Promise<Record<'inplace' | 'ab', Uint8Array>> {
  const old = new Uint8Array(readFileSync(pair.oldPath));
  const neu = new Uint8Array(readFileSync(pair.newPath));
  const make = async (mode: 'inplace' | 'ab') => (await generatePackage(old, neu, { mode, splitSize: SPLIT_SIZE, dictSize: DICT_SIZE })).package;
  return { inplace: await make('inplace'), ab: await make('ab') };
}

/** One clean restore of each package on each profile. */
export function measureWear(pair: Pair, group: PairGroup, packages: Record<'inplace' | 'ab', Uint8Array>, profiles: readonly string[] = PROFILE_NAMES): WearRow[] {
  const old = new Uint8Array(readFileSync(pair.oldPath));
  const neu = new Uint8Array(readFileSync(pair.newPath));
  const rows: WearRow[] = [];
  for (const profile of profiles) {
    for (const mode of ['inplace', 'ab'] as const) {
      const r = runPowercut(old, neu, packages[mode], { profile, sample: 0 });
      const w = r.wear;
      rows.push({
        pair: pair.name,
        group,
        profile,
        mode: r.mode,
        operations: r.operations,
        erases: w.erases,
        newSectors: w.newSectors,
        erasesPerNewSector: w.erasesPerNewSector,
        maxErasesPerSector: w.maxErasesPerSector,
        bytesProgrammed: w.bytesProgrammed,
        newBytes: neu.length,
        unchangedSectors: w.unchangedSectors,
        unchangedSectorErases: w.unchangedSectorErases,
        restoreMs: w.restoreMs,
      });
    }
  }
  return rows;
}

function geomean(xs: number[]): number {
  return Math.exp(xs.reduce((s, x) => s + Math.log(x), 0) / xs.length);
}

function msText(v: number | null): string {
  return v === null ? '–' : v >= 1000 ? `${(v / 1000).toFixed(1)} s` : `${v.toFixed(0)} ms`;
}

/** The wear table: one row per pair, profile and mode. */
export function wearTable(rows: WearRow[]): string {
  return table(
    ['pair', 'flash', 'mode', 'erases', 'NEW sectors', 'erases/NEW sector', 'busiest sector (erases)', 'bytes programmed', 'programmed/NEW', 'sectors already NEW (erases)', 'modelled time'],
    rows.map((r) => [
      r.pair,
      r.profile,
      r.mode,
      bytes(r.erases),
      bytes(r.newSectors),
      ratio(r.erasesPerNewSector),
      String(r.maxErasesPerSector),
      bytes(r.bytesProgrammed),
      ratio(r.bytesProgrammed / r.newBytes),
      r.mode === 'inplace' ? `${r.unchangedSectors} (${r.unchangedSectorErases})` : '–',
      msText(r.restoreMs),
    ]),
  );
}

/** Geometric means of erases per NEW sector, per group, profile and mode. */
export function wearSummary(rows: WearRow[]): string {
  const keys = [...new Set(rows.map((r) => `${r.group}|${r.profile}|${r.mode}`))];
  return table(
    ['pairs', 'flash', 'mode', 'geomean erases/NEW sector', 'worst busiest sector', 'total modelled time'],
    keys.map((k) => {
      const [group, profile, mode] = k.split('|');
      const sel = rows.filter((r) => r.group === group && r.profile === profile && r.mode === mode);
      const times = sel.map((r) => r.restoreMs);
      return [
        `${group} (${sel.length})`,
        profile,
        mode,
        ratio(geomean(sel.map((r) => r.erasesPerNewSector))),
        String(Math.max(...sel.map((r) => r.maxErasesPerSector))),
        times.some((t) => t === null) ? '–' : msText(times.reduce<number>((s, t) => s + (t ?? 0), 0)),
      ];
    }),
  );
}

function line(ok: boolean | null, text: string): string {
  return `${ok === null ? 'NOT MEASURED' : ok ? 'PASS' : 'FAIL'}  ${text}`;
}

/** Issue 16's wear targets, judged on these rows. */
export function wearTargets(rows: WearRow[]): string[] {
  const out: string[] = [];
  const esp = rows.filter((r) => r.group === 'esp' && r.profile === 'spi-nor-4k' && r.mode === 'inplace');
  if (esp.length === 0) out.push(line(null, '(wear a) erases per NEW sector, ESP8266 pairs in place on spi-nor-4k: no rows'));
  else {
    const g = geomean(esp.map((r) => r.erasesPerNewSector));
    out.push(line(g <= 1.5, `(wear a) in place on spi-nor-4k, geometric mean over ${esp.length} ESP8266 pairs of erases per NEW sector = ${ratio(g)} (target <= 1.5; ${esp.map((r) => ratio(r.erasesPerNewSector)).join(', ')})`));
  }
  const big = rows.filter((r) => r.group === 'big' && r.mode === 'inplace');
  if (big.length === 0) out.push(line(null, '(wear b) busiest sector on the multi-MB pair: not in this run'));
  else
    for (const r of big)
      out.push(line(r.maxErasesPerSector <= 4, `(wear b) busiest sector in place on ${r.profile}, ${r.pair}: ${r.maxErasesPerSector} erases in one update (target <= 4)`));
  const mb = rows.filter((r) => r.group === 'microbit' && r.mode === 'inplace');
  if (mb.length === 0) out.push(line(null, '(wear c) micro:bit pairs: not in this run'));
  else {
    const unchanged = mb.reduce((n, r) => n + r.unchangedSectors, 0);
    const erased = mb.reduce((n, r) => n + r.unchangedSectorErases, 0);
    out.push(line(erased === 0, `(wear c) micro:bit pairs in place, every profile: ${unchanged} sectors already holding NEW, erased ${erased} times (target 0)`));
  }
  return out;
}
