// The label correspondence a transformed package carries (patch-apply's LabelMap), learnt from votes:
// each reference of NEW that a plain diff copied from a reference of OLD says "OLD's x is NEW's y".
// The map is piecewise constant in y - x; a segment costs bytes in the header, a vote it gets wrong
// costs a changed byte or two in the command stream, so the segments are chosen to minimise both.
import type { LabelMap } from '@otadiff/patch-apply';

/** What one segment costs, in votes (measured on the micro:bit pairs: 2 beats 1, 3 and 4). */
const SEGMENT_COST = 2;
/** A segment is looked for among this many points before the one it would end at (bounds the search). */
const SEARCH_WINDOW = 1024;

export class LabelVotes {
  private from: number[] = [];
  private to: number[] = [];

  add(oldX: number, newX: number): void {
    this.from.push(oldX);
    this.to.push(newX);
  }

  get count(): number {
    return this.from.length;
  }

  /** Votes grouped by OLD label, ascending: each label's distinct shifts with their vote counts. */
  points(): { x: Int32Array; first: Int32Array; deltas: Int32Array; counts: Int32Array } {
    const order = Array.from(this.from.keys()).sort((a, b) => this.from[a] - this.from[b] || this.to[a] - this.from[a] - (this.to[b] - this.from[b]));
    const x: number[] = [];
    const first: number[] = [];
    const deltas: number[] = [];
    const counts: number[] = [];
    for (const k of order) {
      const ox = this.from[k];
      const d = this.to[k] - ox;
      if (x.length === 0 || x[x.length - 1] !== ox) {
        x.push(ox);
        first.push(deltas.length);
        deltas.push(d);
        counts.push(1);
      } else if (deltas[deltas.length - 1] === d) counts[counts.length - 1]++;
      else {
        deltas.push(d);
        counts.push(1);
      }
    }
    first.push(deltas.length);
    return { x: Int32Array.from(x), first: Int32Array.from(first), deltas: Int32Array.from(deltas), counts: Int32Array.from(counts) };
  }
}

/**
 * The cheapest piecewise-constant map for the votes (dynamic programming over the labels in order):
 * a segment starts at a label and takes the shift most of that label's votes agree on; cost =
 * `segmentCost` per segment + one per vote the map gets wrong.
 */
export function buildLabelMap(votes: LabelVotes, segmentCost: number = SEGMENT_COST): LabelMap {
  const { x, first, deltas, counts } = votes.points();
  const n = x.length;
  if (n === 0) return { starts: new Int32Array(0), deltas: new Int32Array(0) };
  const total = new Int32Array(n);
  const major = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = -1;
    for (let k = first[i]; k < first[i + 1]; k++) {
      total[i] += counts[k];
      if (counts[k] > best) {
        best = counts[k];
        major[i] = deltas[k];
      }
    }
  }
  const votesFor = (i: number, d: number): number => {
    for (let k = first[i]; k < first[i + 1]; k++) if (deltas[k] === d) return counts[k];
    return 0;
  };
  // cost[i] = cheapest map of points [0, i) whose last segment ends at i; from[i] = where it starts.
  const cost = new Float64Array(n + 1).fill(Infinity);
  const from = new Int32Array(n + 1).fill(-1);
  cost[0] = 0;
  for (let j = 0; j < n; j++) {
    let c = cost[j] + segmentCost;
    const d = major[j];
    for (let i = j; i < n && i < j + SEARCH_WINDOW; i++) {
      c += total[i] - votesFor(i, d);
      if (c < cost[i + 1]) {
        cost[i + 1] = c;
        from[i + 1] = j;
      }
    }
  }
  const segs: { start: number; delta: number }[] = [];
  for (let i = n; i > 0; i = from[i]) segs.push({ start: x[from[i]], delta: major[from[i]] });
  segs.reverse();
  // Neighbours with the same shift are one segment; a leading identity segment is the map's default.
  const merged = segs.filter((s, k) => (k === 0 ? s.delta !== 0 : s.delta !== segs[k - 1].delta));
  return { starts: Int32Array.from(merged, (s) => s.start), deltas: Int32Array.from(merged, (s) => s.delta) };
}
