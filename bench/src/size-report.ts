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

/**
 * Size table with one column per listed peer (missing peers are left out), ratios to bsdiff and a
 * geometric-mean row of the ratios over `mean.rows` (default: all rows).
 */
export function sizeTable(rows: SizeRow[], peers: Peer[], peerIds: string[], mean: { label: string; rows: SizeRow[] } = { label: 'geometric mean', rows }): string {
  const shown = peerIds.map((id) => peers.find((p) => p.id === id)).filter((p): p is Peer => p !== undefined && p.available);
  const ref = bsdiffReference(peers);
  const head = ['pair', 'NEW', 'ours inplace', 'ours ab', ...shown.map((p) => p.label)];
  if (ref) head.push(`inplace/${ref.label}`, `ab/${ref.label}`);
  const body = rows.map((r) => {
    const cells = [r.pair.name, bytes(r.pair.newSize), bytes(r.inplace.bytes), bytes(r.ab.bytes), ...shown.map((p) => bytes(r.peers[p.id]))];
    if (ref) cells.push(ratio(r.inplace.bytes / r.peers[ref.id]), ratio(r.ab.bytes / r.peers[ref.id]));
    return cells;
  });
  if (ref && mean.rows.length > 1) {
    const s = summarizeSizes(mean.rows, peers);
    body.push([`**${mean.label}**`, '', '', '', ...shown.map(() => ''), `**${ratio(s.inplaceGeo)}**`, `**${ratio(s.abGeo)}**`]);
  }
  return table(head, body);
}

const COLORS = ['#1f77b4', '#6baed6', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b'];

/**
 * Bars of ours/peer per pair: below the dashed 1.0 line the otadiff package is the smaller one. With
 * `meanOf`, a last group shows the geometric mean of each ratio over those rows.
 */
export function sizeChart(rows: SizeRow[], peers: Peer[], meanOf?: { label: string; rows: SizeRow[] }): string {
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
    values: [...rows.map(x.f), ...(meanOf ? [geometricMean(meanOf.rows.map(x.f))] : [])],
  }));
  return renderBarChart({
    title: 'otadiff package size relative to each peer (lower is better; dashed line = same size)',
    yLabel: 'size ratio (ours / peer)',
    groups: [...rows.map((r) => r.pair.name), ...(meanOf ? [meanOf.label] : [])],
    series,
    reference: 1,
  });
}
