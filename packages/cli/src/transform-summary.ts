// What `otadiff diff` and `otadiff info` say about a package's transform.
import { chunkTransformed, type PackageHeader } from '@otadiff/patch-apply';

export interface TransformSummary {
  kind: string;
  base: string;
  span: number;
  origin: string;
  mapSegments: number;
  /** Indices of the chunks restored through the transform. */
  chunks: number[];
}

const hex = (a: number) => `0x${a.toString(16).padStart(8, '0')}`;

export function transformSummary(h: Pick<PackageHeader, 'transform' | 'chunks'>): TransformSummary | null {
  const t = h.transform;
  if (t === null) return null;
  return {
    kind: t.kind,
    base: hex(t.base),
    span: t.span,
    origin: hex(t.origin),
    mapSegments: t.map.starts.length,
    chunks: h.chunks.map((_c, i) => i).filter((i) => chunkTransformed(t, i)),
  };
}

/** One line: "thumb2 on 4 of 8 chunks (addresses 0x00000000 + 520995, code at 0x00000000, 301 map segments)" or "none". */
export function describeTransform(s: TransformSummary | null, chunkCount: number): string {
  if (s === null) return 'none';
  return `${s.kind} on ${s.chunks.length} of ${chunkCount} chunks (addresses ${s.base} + ${s.span}, code at ${s.origin}, ${s.mapSegments} map segments)`;
}
