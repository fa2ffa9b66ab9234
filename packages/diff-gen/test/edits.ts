// Deterministic structured edits of an image, for round-trip tests.
import fc from 'fast-check';

export type Edit =
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; len: number }
  | { kind: 'replace'; at: number; bytes: Uint8Array }
  | { kind: 'move'; from: number; len: number; to: number }
  | { kind: 'bump'; at: number; len: number; delta: number };

export function applyEdit(img: Uint8Array, e: Edit): Uint8Array {
  const n = img.length;
  const clamp = (x: number) => (n === 0 ? 0 : x % (n + 1));
  switch (e.kind) {
    case 'insert': {
      const at = clamp(e.at);
      return concat(img.subarray(0, at), e.bytes, img.subarray(at));
    }
    case 'delete': {
      const at = clamp(e.at);
      return concat(img.subarray(0, at), img.subarray(Math.min(n, at + e.len)));
    }
    case 'replace': {
      const out = img.slice();
      const at = clamp(e.at);
      out.set(e.bytes.subarray(0, Math.max(0, n - at)), at);
      return out;
    }
    case 'move': {
      const from = clamp(e.from);
      const block = img.slice(from, Math.min(n, from + e.len));
      const rest = concat(img.subarray(0, from), img.subarray(from + block.length));
      const to = rest.length === 0 ? 0 : e.to % (rest.length + 1);
      return concat(rest.subarray(0, to), block, rest.subarray(to));
    }
    case 'bump': {
      // Relocated addresses: the same code with a constant added to every 4th byte.
      const out = img.slice();
      const at = clamp(e.at);
      for (let i = at; i < Math.min(n, at + e.len); i += 4) out[i] = (out[i] + e.delta) & 0xff;
      return out;
    }
  }
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const bytes = (max: number) => fc.uint8Array({ minLength: 1, maxLength: max });

export const editArb: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: bytes(6000) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 9000 }) }),
  fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), bytes: bytes(3000) }),
  fc.record({ kind: fc.constant('move' as const), from: fc.nat(), len: fc.integer({ min: 1, max: 8000 }), to: fc.nat() }),
  fc.record({ kind: fc.constant('bump' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 20000 }), delta: fc.integer({ min: 1, max: 255 }) }),
);

/** Compressible, code-like pseudo-random image (a small alphabet of repeating "instructions"). */
export function codeLike(len: number, seed: number): Uint8Array {
  let s = seed >>> 0 || 1;
  const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0), s >>> 8);
  const ops = Array.from({ length: 64 }, () => Uint8Array.from({ length: 4 }, () => rnd() & 0xff));
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i += 4) {
    const op = ops[rnd() % ops.length];
    for (let k = 0; k < 4 && i + k < len; k++) out[i + k] = k === 3 ? rnd() & 0xff : op[k];
  }
  return out;
}
