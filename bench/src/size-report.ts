// The size table (markdown) and size-ratio chart (SVG) shared by `bench` and `bench:size`.
import { bytes, ratio, table } from './format.js';
import type { Peer } from './peers.js';
import { geometricMean, type SizeRow } from './sizes.js';
import { renderBarChart, type Series } from './svg.js';

/** The bsdiff figure ratios are taken against: Debian's bsdiff, else bsdiff-node (same algorithm). */
export function bsdiffReference(peers: Peer[]): Peer | null {
  return peers.find((p) => p.id === 'bsdiff' && p.available) ?? peers.find((p) => p.id === 'bsdiff-node' && p.available) ?? null;
}

export interface SizeSummary {
  reference: Peer | null;
  inplaceGeo: number;
  abGeo: number;
}

export function summarizeSizes(rows: SizeRow[], peers: Peer[]): SizeSummary {
  const ref = bsdiffReference(peers);
  if (ref === null) return { reference: null, inplaceGeo: NaN, abGeo: NaN };
  return {
    reference: ref,
    inplaceGeo: geometricMean(rows.map((r) => r.inplace.bytes / r.peers[ref.id])),
    abGeo: geometricMean(rows.map((r) => r.ab.bytes / r.peers[ref.id])),
  };
}

/** A geometric-mean row of the ratios over some of the table's rows (one corpus). */
export interface MeanRow {
  label: string;
  rows: SizeRow[];
}

/**
 * Size table with one column per listed peer (missing peers are left out), ratios to bsdiff and a
 * geometric-mean row of the ratios for each of `means` (default: one over all rows).
 */
export function sizeTable(rows: SizeRow[], peers: Peer[], peerIds: string[], means: MeanRow[] = [{ label: 'geometric mean', rows }]): string {
  const shown = peerIds.map((id) => peers.find((p) => p.id === id)).filter((p): p is Peer => p !== undefined && p.available);
  const ref = bsdiffReference(peers);
  const head = ['pair', 'NEW', 'ours inplace', 'ours ab', ...shown.map((p) => p.label)];
  if (ref) head.push(`inplace/${ref.label}`, `ab/${ref.label}`);
  const body = rows.map((r) => {
    const cells = [r.pair.name, bytes(r.pair.newSize), bytes(r.inplace.bytes), bytes(r.ab.bytes), ...shown.map((p) => bytes(r.peers[p.id]))];
    if (ref) cells.push(ratio(r.inplace.bytes / r.peers[ref.id]), ratio(r.ab.bytes / r.peers[ref.id]));
    return cells;
  });
  if (ref)
    for (const mean of means.filter((m) => m.rows.length > 1)) {
      const s = summarizeSizes(mean.rows, peers);
      body.push([`**${mean.label}**`, '', '', '', ...shown.map(() => ''), `**${ratio(s.inplaceGeo)}**`, `**${ratio(s.abGeo)}**`]);
    }
  return table(head, body);
}

const COLORS = ['#1f77b4', '#6baed6', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b'];

/**
 * Bars of ours/peer per pair: below the dashed 1.0 line the otadiff package is the smaller one. Each of
 * `means` adds a last group with the geometric mean of each ratio over its rows.
 */
export function sizeChart(rows: SizeRow[], peers: Peer[], means: MeanRow[] = []): string {
  const ref = bsdiffReference(peers);
  const ratios: { label: string; f: (r: SizeRow) => number }[] = [];
  if (ref) {
    ratios.push({ label: `inplace / ${ref.label}`, f: (r) => r.inplace.bytes / r.peers[ref.id] });
    ratios.push({ label: `ab / ${ref.label}`, f: (r) => r.ab.bytes / r.peers[ref.id] });
  }
  for (const p of peers) if (p.available && p !== ref) ratios.push({ label: `inplace / ${p.label}`, f: (r) => r.inplace.bytes / r.peers[p.id] });
  const series: Series[] = ratios.map((x, i) => ({
    label: x.label,
    color: COLORS[i % COLORS.length],
    values: [...rows.map(x.f), ...means.map((m) => geometricMean(m.rows.map(x.f)))],
  }));
  return renderBarChart({
    title: 'otadiff package size relative to each peer (lower is better; dashed line = same size)',
    yLabel: 'size ratio (ours / peer)',
    groups: [...rows.map((r) => r.pair.name), ...means.map((m) => m.label)],
    series,
    reference: 1,
  });
}
