// Reading the parts of an HTTP response that both the downloader and the header fetch rely on.

/** Statuses worth retrying after a pause. */
export const RETRYABLE_STATUS = new Set([408, 425, 429, 500, 502, 503, 504]);

// A strong entity-tag we can replay in If-Range and store in a checkpoint.
const STRONG_ETAG_RE = /^"[\x21\x23-\x7e]{0,250}"$/;

/** The response's ETag if it is a strong one, else undefined. */
export function strongEtag(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' && STRONG_ETAG_RE.test(value) ? value : undefined;
}

/** `Content-Range: bytes start-end/total`, validated; undefined when absent or malformed. */
export function parseContentRange(v: string | undefined): { start: number; end: number; total: number } | undefined {
  const m = v === undefined ? null : /^bytes ([0-9]{1,15})-([0-9]{1,15})\/([0-9]{1,15})$/.exec(v.trim());
  if (!m) return undefined;
  const [start, end, total] = [Number(m[1]), Number(m[2]), Number(m[3])];
  return end < start || end >= total ? undefined : { start, end, total };
}
