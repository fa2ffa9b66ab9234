// The bench's pure helpers: version ordering of the corpus, geometric mean, tables and the SVG chart.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { table } from '../src/format.js';
import { espPairs } from '../src/pairs.js';
import type { Peer } from '../src/peers.js';
import { sizeChart, sizeTable, summarizeSizes } from '../src/size-report.js';
import { geometricMean, type SizeRow } from '../src/sizes.js';
import { renderBarChart } from '../src/svg.js';

const peer = (id: string, available = true): Peer => ({
  id,
  label: id,
  install: '',
  available,
  make: async () => {},
  restore: async () => {},
});

const lzma = { lc: 0, lp: 0, pb: 0, dictSize: 16384 };

function row(name: string, inplace: number, ab: number, bsdiff: number, xz: number): SizeRow {
  const pair = { name, oldPath: '', newPath: '', oldSize: 1000, newSize: 1000 };
  return {
    pair,
    inplace: { mode: 'inplace', path: '', bytes: inplace, ramBytes: 1, lzma },
    ab: { mode: 'ab', path: '', bytes: ab, ramBytes: 1, lzma },
    peers: { bsdiff, xz },
  };
}

describe('bench helpers', () => {
  let dir = '';
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    delete process.env.OTADIFF_CORPUS;
  });

  it('pairs consecutive at-v*.bin by version, not by name', () => {
    dir = mkdtempSync(join(tmpdir(), 'otadiff-corpus-'));
    for (const [f, n] of [['at-v3.0.10.bin', 4], ['at-v2.2.0.bin', 1], ['at-v3.0.2.bin', 2], ['at-v3.0.9.bin', 3], ['boot_v1.6.bin', 9]] as const)
      writeFileSync(join(dir, f), new Uint8Array(n));
    process.env.OTADIFF_CORPUS = dir;
    const pairs = espPairs();
    expect(pairs.map((p) => p.name)).toEqual(['esp8266-at v2.2.0→v3.0.2', 'esp8266-at v3.0.2→v3.0.9', 'esp8266-at v3.0.9→v3.0.10']);
    expect(pairs.map((p) => [p.oldSize, p.newSize])).toEqual([[1, 2], [2, 3], [3, 4]]);
  });

  it('geometric mean', () => {
    expect(geometricMean([0.5, 2])).toBeCloseTo(1, 12);
    expect(geometricMean([0.9, 0.9, 0.9])).toBeCloseTo(0.9, 12);
    expect(geometricMean([])).toBeNaN();
  });

  it('size table: ratios to bsdiff per pair and their geometric mean; missing peers left out', () => {
    const rows = [row('a', 90, 80, 100, 500), row('b', 40, 30, 50, 300)];
    const peers = [peer('bsdiff'), peer('xz'), peer('xdelta3', false)];
    const md = sizeTable(rows, peers, ['bsdiff', 'xdelta3', 'xz']);
    const lines = md.split('\n');
    expect(lines[0]).toBe('| pair | NEW | ours inplace | ours ab | bsdiff | xz | inplace/bsdiff | ab/bsdiff |');
    expect(lines[2]).toBe('| a | 1,000 | 90 | 80 | 100 | 500 | 0.900 | 0.800 |');
    expect(lines[3]).toBe('| b | 1,000 | 40 | 30 | 50 | 300 | 0.800 | 0.600 |');
    const s = summarizeSizes(rows, peers);
    expect(s.inplaceGeo).toBeCloseTo(Math.sqrt(0.9 * 0.8), 12);
    expect(s.abGeo).toBeCloseTo(Math.sqrt(0.8 * 0.6), 12);
    expect(lines[4]).toContain(`**${s.inplaceGeo.toFixed(3)}**`);
  });

  it('falls back to bsdiff-node for the ratios when Debian bsdiff is missing', () => {
    const r = row('a', 90, 80, 0, 500);
    r.peers['bsdiff-node'] = 120;
    const s = summarizeSizes([r], [peer('bsdiff', false), peer('bsdiff-node')]);
    expect(s.reference?.id).toBe('bsdiff-node');
    expect(s.inplaceGeo).toBeCloseTo(0.75, 12);
  });

  it('chart: one bar per available value, a mean group, escaped labels, bars scaled to the axis', () => {
    const rows = [row('a<b', 90, 80, 100, 500), row('c', 40, 30, 50, 300)];
    const svg = sizeChart(rows, [peer('bsdiff'), peer('xz')], [{ label: 'mean', rows }]);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    // 3 series (inplace/bsdiff, ab/bsdiff, inplace/xz) x 3 groups (2 pairs + mean) bars, plus background and 3 legend swatches.
    expect(svg.match(/<rect /g)?.length).toBe(1 + 9 + 3);
    expect(svg).toContain('a&lt;b');
    expect(svg).not.toContain('a<b');
    const bar = renderBarChart({ title: 't', yLabel: 'y', groups: ['g'], series: [{ label: 's', color: '#000', values: [1] }, { label: 'n', color: '#111', values: [null] }], reference: 1 });
    // Bars carry a <title>; the one value 1 is drawn, the null is not, and its height matches the axis scale.
    const bars = [...bar.matchAll(/<rect x="[\d.]+" y="([\d.]+)" width="\d+" height="([\d.]+)" fill="[^"]+"><title>/g)];
    expect(bars).toHaveLength(1);
    const axisTop = Number(/<text x="\d+" y="([\d.]+)" text-anchor="end">1<\/text>/.exec(bar)?.[1]) - 4;
    expect(Number(bars[0][1])).toBeCloseTo(axisTop, 0);
  });

  it('markdown table alignment row', () => {
    expect(table(['a', 'b'], [['x', '1']])).toBe('| a | b |\n|:---|---:|\n| x | 1 |');
  });
});
