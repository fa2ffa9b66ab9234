// `serve --url-ttl SECONDS`: how long a signed download URL lives. The URL is bound to its device and
// job and served only while that job is under way, so the lifetime is a backstop: long enough for a
// device to start (and resume) its download, short enough that a leaked URL dies on its own.
import { CliError } from './size-arg.js';

/** The default, 15 minutes: a download starts soon after its notice. */
export const DEFAULT_URL_TTL_S = 900;
/** Below a minute a URL may expire before a busy or sleepy device fetches it. */
export const MIN_URL_TTL_S = 60;
/** A week: beyond it a leaked URL outlives any download worth waiting for. */
export const MAX_URL_TTL_S = 7 * 86_400;

/** Whole seconds, written as a plain decimal integer (no 1e3, 0x3c, 0900, 90.0 or 15m). */
export function parseUrlTtl(text: string | undefined): number {
  if (text === undefined) return DEFAULT_URL_TTL_S;
  const n = /^[1-9][0-9]{0,6}$/.test(text) ? Number(text) : NaN;
  if (!(n >= MIN_URL_TTL_S && n <= MAX_URL_TTL_S)) {
    throw new CliError(`--url-ttl must be a whole number of seconds from ${MIN_URL_TTL_S} to ${MAX_URL_TTL_S} (7 days), not "${text.slice(0, 60)}"`);
  }
  return n;
}
