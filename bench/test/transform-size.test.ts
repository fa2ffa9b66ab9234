// The transform section of bench:size: the BCJ pre-filter it compares with, and its tables.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { bcjDecode, bcjEncode } from '../src/bcj.js';
import { summarizeTransformSizes, transformSizeTables, type TransformSizeRow } from '../src/transform-size.js';

const MICROBIT = new URL('../../corpus/microbit-codal/', import.meta.url);
const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Buffer.compare(a, b) === 0;

function row(name: string, plain: number, transformed: number, bsdiff: number, bcj: number | null): TransformSizeRow {
  const speed = { lzmaMBps: 1, applyMBps: 40, loopMBps: 120, hashMBps: 1, lzmaBytes: 1, newBytes: 1, hostApplySeconds: 0.01 };
  return {
    pair: { name, oldPath: '', newPath: '', oldSize: 1000, newSize: 1000 },
    mode: 'inplace',
    plain: { bytes: plain, ramBytes: 100, transform: 'none', speed },
    transformed: { bytes: transformed, ramBytes: 120, transform: 'thumb2 3/4', speed: { ...speed, loopMBps: 100 } },
    bsdiff,
    bcjBsdiff: bcj,
  };
}

describe('transform bench', () => {
  it('the BCJ filter is undone exactly, on any bytes and on a real image, and changes BL offsets', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 5000 }), (b) => same(bcjDecode(bcjEncode(b)), b)), { seed: 1, numRuns: 200 });
    const img = new Uint8Array(readFileSync(new URL('v1b-4.0.24.bin', MICROBIT)));
    const e = bcjEncode(img);
    expect(same(e, img)).toBe(false);
    expect(same(bcjDecode(e), img)).toBe(true);
  });

  it('tables: every pair, ratios to bsdiff and their geometric means; BCJ only where measured', () => {
    const rows = [row('a', 900, 450, 1000, 1100), row('b', 800, 400, 1000, 900)];
    const s = summarizeTransformSizes(rows);
    expect(s.plainGeo).toBeCloseTo(Math.sqrt(0.9 * 0.8), 10);
    expect(s.transformedGeo).toBeCloseTo(Math.sqrt(0.45 * 0.4), 10);
    expect(s.bcjGeo).toBeCloseTo(Math.sqrt(1.1 * 0.9), 10);
    const md = transformSizeTables(rows, 'bsdiff');
    expect(md).toMatch(/\| a \| 1,000 \| 900 \| 450 \| thumb2 3\/4 \| 1,000 \| 1,100 \| 0\.900 \| 0\.450 \| 1\.100 \|/);
    expect(md).toMatch(/\*\*geometric mean\*\*.*\*\*0\.849\*\* \| \*\*0\.424\*\* \| \*\*0\.995\*\*/);
    expect(md).toMatch(/\| a \| 100 \| 120 \| 40 \| 40 \| 120 \| 100 \|/);
    const noBcj = transformSizeTables([row('c', 900, 800, 1000, null)], 'bsdiff');
    expect(noBcj).toMatch(/\| c \| .* \| – \| 0\.900 \| 0\.800 \| – \|/);
    expect(Number.isNaN(summarizeTransformSizes([row('c', 900, 800, 1000, null)]).bcjGeo)).toBe(true);
  });
});
