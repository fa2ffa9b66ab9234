// Number formatting and markdown tables for the reports.

export function kib(n: number): string {
  return n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

export function bytes(n: number): string {
  return n.toLocaleString('en-US');
}

export function ratio(n: number | null | undefined): string {
  return n === null || n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(3);
}

export function seconds(s: number | null): string {
  if (s === null || !Number.isFinite(s)) return '–';
  return s < 1 ? `${(s * 1000).toFixed(0)} ms` : `${s.toFixed(2)} s`;
}

export function table(head: string[], rows: string[][], align?: ('l' | 'r')[]): string {
  const a = align ?? head.map((_, i) => (i === 0 ? 'l' : 'r'));
  const lines = [`| ${head.join(' | ')} |`, `|${a.map((x) => (x === 'l' ? ':---' : '---:')).join('|')}|`];
  for (const r of rows) lines.push(`| ${r.join(' | ')} |`);
  return lines.join('\n');
}
