import { describe, expect, it } from 'vitest';
import { mapLabel } from '@otadiff/patch-apply';
import { buildLabelMap, LabelVotes } from '../src/label-map-builder.js';

const votesOf = (pairs: [number, number][]) => {
  const v = new LabelVotes();
  for (const [a, b] of pairs) v.add(a, b);
  return v;
};

describe('label map from votes', () => {
  it('an insertion: identity before it, one shift after it', () => {
    const pairs: [number, number][] = [];
    for (let x = 0; x < 1000; x += 10) pairs.push([x, x < 500 ? x : x + 64], [x, x < 500 ? x : x + 64]);
    const m = buildLabelMap(votesOf(pairs));
    expect(Array.from(m.starts)).toEqual([500]);
    expect(Array.from(m.deltas)).toEqual([64]);
  });

  it('outvotes a stray: a label whose few votes disagree costs less than two segments', () => {
    const pairs: [number, number][] = [];
    for (let x = 0; x < 1000; x += 10) pairs.push([x, x + 8]);
    pairs.push([505, 9999]);
    const m = buildLabelMap(votesOf(pairs));
    expect(Array.from(m.deltas)).toEqual([8]);
    expect(mapLabel(m, 505)).toBe(513);
  });

  it('follows the majority of each label, and keeps a shift many labels agree on', () => {
    const pairs: [number, number][] = [];
    for (let x = 0; x < 300; x += 3) pairs.push([x, x + 2], [x, x + 2], [x, x + 50]);
    for (let x = 300; x < 600; x += 3) pairs.push([x, x - 40]);
    const m = buildLabelMap(votesOf(pairs));
    expect([mapLabel(m, 150), mapLabel(m, 450)]).toEqual([152, 410]);
    expect(m.starts.length).toBe(2);
  });

  it('no votes: the empty map; a higher segment cost gives fewer segments', () => {
    expect(buildLabelMap(new LabelVotes()).starts.length).toBe(0);
    const pairs: [number, number][] = [];
    for (let x = 0; x < 2000; x += 4) pairs.push([x, x + 4 * Math.floor(x / 200)]);
    const fine = buildLabelMap(votesOf(pairs));
    const coarse = buildLabelMap(votesOf(pairs), 1000);
    expect(fine.starts.length).toBe(9);
    expect(coarse.starts.length).toBeLessThan(fine.starts.length);
  });
});
