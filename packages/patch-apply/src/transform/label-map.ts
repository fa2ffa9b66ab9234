// The label correspondence of a transformed package: where OLD's code and data went in NEW, as a
// piecewise-constant shift. A reference in OLD whose target only moved is rewritten through it into the
// value NEW holds, so the command stream sees equal bytes (docs/FORMAT.md, "Transform section").
import { PackageError } from '../package-error.js';

/**
 * Segments sorted by `starts` (strictly increasing): an OLD image offset x in [starts[k], starts[k+1])
 * maps to x + deltas[k]; below starts[0] the map is the identity.
 */
export interface LabelMap {
  readonly starts: Int32Array;
  readonly deltas: Int32Array;
}

export const EMPTY_LABEL_MAP: LabelMap = { starts: new Int32Array(0), deltas: new Int32Array(0) };

/**
 * Most labels a transform may have (docs/FORMAT.md, "Transform section"): below 2^31 every label that
 * can start a segment, and every address word's label, is a non-negative 32-bit integer, so the starts
 * fit an Int32Array and compare with any label (a branch's is signed) as plain numbers.
 */
export const MAX_LABEL_SPAN = 2 ** 31;

/** Which values are labels: an address base + x with x < span is the image's own; x is its label. */
export interface Labels {
  base: number;
  span: number;
  /** The address image offset 0 runs at: a branch at image offset s reaches labels from origin + s. */
  origin: number;
}

/** What the OLD side of a transform needs beside OLD's bytes. */
export interface Prediction extends Labels {
  /** Where OLD's labels went in NEW. */
  map: LabelMap;
}

/** RAM a patcher holds for a map of `count` segments (two 32-bit words each). */
export function labelMapRamBytes(count: number): number {
  return 8 * count;
}

/** Where OLD offset `x` (any 32-bit integer) lands in NEW under the map; 32-bit wrap-around arithmetic. */
export function mapLabel(m: LabelMap, x: number): number {
  const starts = m.starts;
  // Most words below the first segment are small constants, not addresses: no search for them.
  if (starts.length === 0 || x < starts[0]) return x;
  let lo = 0;
  let hi = starts.length - 1;
  let k = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (starts[mid] <= x) {
      k = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return k < 0 ? x : (x + m.deltas[k]) | 0;
}

const zigzag = (v: number): number => ((v << 1) ^ (v >> 31)) >>> 0;
const unzigzag = (u: number): number => (u >>> 1) ^ -(u & 1);

/** Bytes of one LEB128 number (at most 5). */
function varintLength(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

function putVarint(out: Uint8Array, at: number, v: number): number {
  while (v >= 0x80) {
    out[at++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  out[at++] = v;
  return at;
}

/** Encoded bytes of a map: per segment the gap from the previous start and the zigzag change of delta. */
export function encodedLabelMapLength(m: LabelMap): number {
  let n = 0;
  let start = 0;
  let delta = 0;
  for (let k = 0; k < m.starts.length; k++) {
    n += varintLength(m.starts[k] - start) + varintLength(zigzag((m.deltas[k] - delta) | 0));
    start = m.starts[k];
    delta = m.deltas[k];
  }
  return n;
}

export function encodeLabelMap(m: LabelMap, out: Uint8Array, at: number): number {
  let start = 0;
  let delta = 0;
  for (let k = 0; k < m.starts.length; k++) {
    at = putVarint(out, at, m.starts[k] - start);
    at = putVarint(out, at, zigzag((m.deltas[k] - delta) | 0));
    start = m.starts[k];
    delta = m.deltas[k];
  }
  return at;
}

/**
 * Decodes and validates `count` segments filling `bytes` exactly: starts strictly increasing inside
 * the labels (`[0, span)`, span at most MAX_LABEL_SPAN), every start mapped inside them too
 * (`[0, span]`), numbers of at most 32 bits.
 */
export function decodeLabelMap(bytes: Uint8Array, count: number, span: number): LabelMap {
  const fail = (msg: string): never => {
    throw new PackageError('bad-header', `transform map: ${msg}`);
  };
  if (span > MAX_LABEL_SPAN) fail(`a span of ${span} labels exceeds 2^31`);
  // Each segment takes at least two bytes: a count the bytes cannot hold is refused before allocating.
  if (count * 2 > bytes.length) fail(`${count} segments cannot fit in ${bytes.length} bytes`);
  const starts = new Int32Array(count);
  const deltas = new Int32Array(count);
  let pos = 0;
  const next = (): number => {
    let v = 0;
    for (let shift = 0; ; shift += 7) {
      if (pos >= bytes.length) fail('ends inside a number');
      const b = bytes[pos++];
      if (shift === 28 && b > 0x0f) fail('a number exceeds 32 bits');
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v;
    }
  };
  let start = 0;
  let delta = 0;
  for (let k = 0; k < count; k++) {
    const gap = next();
    if (k > 0 && gap === 0) fail(`segment ${k} does not start after segment ${k - 1}`);
    start += gap;
    if (start >= span) fail(`segment ${k} starts at ${start}, past the ${span} labels of the transform`);
    // 32-bit wrap-around, as the encoder's differences.
    delta = (delta + unzigzag(next())) | 0;
    if (start + delta < 0 || start + delta > span) fail(`segment ${k} maps ${start} to ${start + delta}, outside the ${span} labels of the transform`);
    starts[k] = start;
    deltas[k] = delta;
  }
  if (pos !== bytes.length) fail(`${bytes.length - pos} bytes after the last segment`);
  return { starts, deltas };
}
