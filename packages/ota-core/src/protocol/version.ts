// Dotted firmware version comparison: "1.10.0" > "1.9.0", "1.0" == "1.0.0",
// "2.0.0-beta.2" < "2.0.0-beta.10" < "2.0.0". Aliyun allows letters, digits,
// '.', '-', '_' in a version (1-64 chars); we accept that shape plus an optional
// leading 'v' and '+build' metadata (ignored, as in SemVer).

export class VersionError extends Error {
  override name = 'VersionError';
}

export interface ParsedVersion {
  /** Numeric release components with leading zeros stripped, trailing zero components dropped. */
  readonly release: readonly string[];
  /** Pre-release identifiers (empty for a release). */
  readonly prerelease: readonly string[];
}

const MAX_VERSION_LENGTH = 128;
const RELEASE_RE = /^[0-9]+(?:\.[0-9]+)*$/;
const IDENT_RE = /^[0-9A-Za-z_-]+$/;

function stripZeros(digits: string): string {
  let i = 0;
  while (i < digits.length - 1 && digits.charCodeAt(i) === 48) i++;
  return digits.slice(i);
}

export function parseVersion(input: string): ParsedVersion {
  if (typeof input !== 'string') throw new VersionError('version must be a string');
  if (input.length === 0 || input.length > MAX_VERSION_LENGTH) {
    throw new VersionError(`version length ${input.length} outside 1..${MAX_VERSION_LENGTH}`);
  }
  let s = input;
  if (s[0] === 'v' || s[0] === 'V') s = s.slice(1);
  const plus = s.indexOf('+');
  if (plus >= 0) {
    const build = s.slice(plus + 1);
    if (build.length === 0 || !build.split('.').every((p) => IDENT_RE.test(p))) {
      throw new VersionError(`bad build metadata in version ${JSON.stringify(input)}`);
    }
    s = s.slice(0, plus);
  }
  const dash = s.indexOf('-');
  const core = dash >= 0 ? s.slice(0, dash) : s;
  const pre = dash >= 0 ? s.slice(dash + 1) : '';
  if (!RELEASE_RE.test(core)) throw new VersionError(`bad version ${JSON.stringify(input)}`);
  const release = core.split('.').map(stripZeros);
  while (release.length > 1 && release[release.length - 1] === '0') release.pop();
  let prerelease: string[] = [];
  if (dash >= 0) {
    prerelease = pre.split('.');
    if (pre.length === 0 || !prerelease.every((p) => IDENT_RE.test(p))) {
      throw new VersionError(`bad pre-release in version ${JSON.stringify(input)}`);
    }
  }
  return { release, prerelease };
}

// Compare two digit strings without leading zeros, of any length (no Number overflow).
function cmpDigits(a: string, b: string): -1 | 0 | 1 {
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

const NUMERIC_RE = /^[0-9]+$/;

function cmpIdent(a: string, b: string): -1 | 0 | 1 {
  const an = NUMERIC_RE.test(a);
  const bn = NUMERIC_RE.test(b);
  if (an && bn) return cmpDigits(stripZeros(a), stripZeros(b));
  if (an) return -1; // numeric identifiers sort before alphanumeric ones (SemVer 11.4.3)
  if (bn) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

export function compareParsed(a: ParsedVersion, b: ParsedVersion): -1 | 0 | 1 {
  const n = Math.max(a.release.length, b.release.length);
  for (let i = 0; i < n; i++) {
    const c = cmpDigits(a.release[i] ?? '0', b.release[i] ?? '0');
    if (c !== 0) return c;
  }
  const ap = a.prerelease;
  const bp = b.prerelease;
  if (ap.length === 0 || bp.length === 0) {
    if (ap.length === bp.length) return 0;
    return ap.length === 0 ? 1 : -1; // a release outranks its pre-releases
  }
  const m = Math.min(ap.length, bp.length);
  for (let i = 0; i < m; i++) {
    const c = cmpIdent(ap[i], bp[i]);
    if (c !== 0) return c;
  }
  return ap.length === bp.length ? 0 : ap.length < bp.length ? -1 : 1;
}

/** Compare two dotted versions; throws VersionError on malformed input. */
export function compareVersions(a: string, b: string): -1 | 0 | 1 {
  return compareParsed(parseVersion(a), parseVersion(b));
}

/** True when `version` is syntactically valid. */
export function isValidVersion(version: string): boolean {
  try {
    parseVersion(version);
    return true;
  } catch {
    return false;
  }
}
