// What `otadiff diff` and `otadiff info` say about a package's transform.
import { chunkTransformed, type PackageHeader } from '@otadiff/patch-apply';

export interface TransformSummary {
  kind: string;
  base: string;
  span: number;
  mapSegments: number;
  /** Indices of the chunks restored through the transform. */
  chunks: number[];
}

export function transformSummary(h: Pick<PackageHeader, 'transform' | 'chunks'>): TransformSummary | null {
  const t = h.transform;
  if (t === null) return null;
  return {
    kind: t.kind,
    base: `0x${t.base.toString(16).padStart(8, '0')}`,
    span: t.span,
    mapSegments: t.map.starts.length,
    chunks: h.chunks.map((_c, i) => i).filter((i) => chunkTransformed(t, i)),
  };
}

/** One line: "thumb2 on 4 of 8 chunks (base 0x00000000, 156 map segments)" or "none". */
export function describeTransform(s: TransformSummary | null, chunkCount: number): string {
  if (s === null) return 'none';
  return `${s.kind} on ${s.chunks.length} of ${chunkCount} chunks (addresses ${s.base} + ${s.span}, ${s.mapSegments} map segments)`;
}
