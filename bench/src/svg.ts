// Charts written as plain SVG (no dependency): a grouped bar chart (one group per pair, one bar per
// series) and a line chart of series over time (the fleet bench).

export interface Series {
  label: string;
  color: string;
  /** One value per group; null draws nothing (tool missing). */
  values: (number | null)[];
}

export interface BarChart {
  title: string;
  yLabel: string;
  groups: string[];
  series: Series[];
  /** A dashed horizontal reference line (e.g. 1.0 = same size as the peer). */
  reference?: number;
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function niceMax(v: number): number {
  const steps = [0.25, 0.5, 1, 2, 2.5, 5];
  const mag = 10 ** Math.floor(Math.log10(v));
  for (const s of steps) if (s * mag * 4 >= v) return s * mag * 4;
  return 10 * mag * 4;
}

/** The SVG element, a white background and the title. */
function openSvg(width: number, height: number, left: number, title: string): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${left}" y="20" font-size="14" font-weight="bold">${esc(title)}</text>`,
  ];
}

/** Five horizontal grid lines with their values, from 0 to yMax. */
function yGrid(out: string[], left: number, plotW: number, y: (v: number) => number, yMax: number, digits: number): void {
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    out.push(`<line x1="${left}" x2="${left + plotW}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`);
    out.push(`<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${+v.toFixed(digits)}</text>`);
  }
}

/** One swatch and label per series, from (x, top) down. */
function legend(out: string[], series: ReadonlyArray<{ label: string; color: string }>, x: number, top: number): void {
  series.forEach((s, si) => {
    const ly = top + si * 18;
    out.push(`<rect x="${x}" y="${ly}" width="12" height="12" fill="${s.color}"/>`);
    out.push(`<text x="${x + 18}" y="${ly + 10}">${esc(s.label)}</text>`);
  });
}

export function renderBarChart(c: BarChart): string {
  const bar = 13;
  const gap = 22;
  const left = 58;
  const top = 40;
  const plotH = 260;
  const legendW = 260;
  const groupW = c.series.length * bar + gap;
  const plotW = c.groups.length * groupW;
  const width = left + plotW + 20 + legendW;
  const height = top + plotH + 70;
  let maxV = c.reference ?? 0;
  for (const s of c.series) for (const v of s.values) if (v !== null && Number.isFinite(v)) maxV = Math.max(maxV, v);
  const yMax = niceMax(maxV > 0 ? maxV : 1);
  const y = (v: number): number => top + plotH - (v / yMax) * plotH;
  const out = openSvg(width, height, left, c.title);
  yGrid(out, left, plotW, y, yMax, 3);
  out.push(`<text transform="translate(14 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(c.yLabel)}</text>`);
  c.groups.forEach((g, gi) => {
    const x0 = left + gi * groupW + gap / 2;
    c.series.forEach((s, si) => {
      const v = s.values[gi];
      if (v === null || !Number.isFinite(v)) return;
      const yv = y(Math.min(v, yMax));
      out.push(
        `<rect x="${x0 + si * bar}" y="${yv.toFixed(1)}" width="${bar - 2}" height="${(top + plotH - yv).toFixed(1)}" fill="${s.color}"><title>${esc(`${g}: ${s.label} = ${v.toFixed(3)}`)}</title></rect>`,
      );
    });
    const lines = g.split(' ');
    const cx = x0 + (c.series.length * bar) / 2;
    lines.forEach((line, li) => out.push(`<text x="${cx}" y="${top + plotH + 16 + li * 13}" text-anchor="middle">${esc(line)}</text>`));
  });
  out.push(`<line x1="${left}" x2="${left + plotW}" y1="${top + plotH}" y2="${top + plotH}" stroke="#333"/>`);
  if (c.reference !== undefined) {
    const yr = y(c.reference);
    out.push(`<line x1="${left}" x2="${left + plotW}" y1="${yr}" y2="${yr}" stroke="#c00" stroke-dasharray="5,4"/>`);
  }
  legend(out, c.series, left + plotW + 20, top);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

export interface LineSeries {
  label: string;
  color: string;
  /** [x, y] points, x ascending. */
  points: Array<[number, number]>;
}

export interface LineChart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: LineSeries[];
  /** Vertical markers, e.g. the moment a worker was killed. */
  markers?: Array<{ x: number; label: string }>;
}

export function renderLineChart(c: LineChart): string {
  const left = 64;
  const top = 40;
  const plotW = 620;
  const plotH = 280;
  const legendW = 240;
  const width = left + plotW + 20 + legendW;
  const height = top + plotH + 56;
  let xMax = 0;
  let yMax = 0;
  for (const s of c.series) for (const [x, y] of s.points) (xMax = Math.max(xMax, x)), (yMax = Math.max(yMax, y));
  for (const m of c.markers ?? []) xMax = Math.max(xMax, m.x);
  xMax = niceMax(xMax > 0 ? xMax : 1);
  yMax = niceMax(yMax > 0 ? yMax : 1);
  const X = (v: number): number => left + (v / xMax) * plotW;
  const Y = (v: number): number => top + plotH - (v / yMax) * plotH;
  const out = openSvg(width, height, left, c.title);
  yGrid(out, left, plotW, Y, yMax, 1);
  for (let i = 0; i <= 4; i++) {
    const xv = (xMax * i) / 4;
    out.push(`<text x="${X(xv)}" y="${top + plotH + 16}" text-anchor="middle">${+xv.toFixed(1)}</text>`);
  }
  out.push(`<text x="${left + plotW / 2}" y="${top + plotH + 36}" text-anchor="middle">${esc(c.xLabel)}</text>`);
  out.push(`<text transform="translate(14 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(c.yLabel)}</text>`);
  out.push(`<line x1="${left}" x2="${left + plotW}" y1="${top + plotH}" y2="${top + plotH}" stroke="#333"/>`);
  out.push(`<line x1="${left}" x2="${left}" y1="${top}" y2="${top + plotH}" stroke="#333"/>`);
  for (const m of c.markers ?? []) {
    out.push(`<line x1="${X(m.x)}" x2="${X(m.x)}" y1="${top}" y2="${top + plotH}" stroke="#c00" stroke-dasharray="5,4"/>`);
    out.push(`<text x="${X(m.x) + 4}" y="${top + 12}" fill="#c00">${esc(m.label)}</text>`);
  }
  for (const s of c.series) {
    if (s.points.length === 0) continue;
    const d = s.points.map(([x, y], i) => `${i === 0 ? 'M' : 'L'}${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
  }
  legend(out, c.series, left + plotW + 20, top);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
