// A rollout's policy, as an operator writes it (`--waves 1%,10%,100%`, `--success-threshold 95%`,
// `--max-failures 5%`, `--timeout 30m`, `--retries 2`) and as the controller applies it. Pure
// functions: parsing (the CLI's strings and the API's JSON alike) and the arithmetic of waves.
//
// Waves are cumulative: "1%,10%,100%" releases 1% of the targeted devices, then up to 10%, then
// all; "10,100,1000" counts devices the same way. A last wave short of everything gets a final
// 100% wave after it, so a rollout always ends with every targeted device.

export class PolicyError extends Error {
  override name = 'PolicyError';
}

export type Amount = { percent: number } | { count: number };

export interface RolloutPolicy {
  /** Cumulative, strictly growing; the last is 100%. */
  waves: Amount[];
  /** Share of a wave that must succeed (or be skipped) before the next starts, percent 0..100. */
  successThreshold: number;
  /** Failures in one wave beyond which the rollout pauses itself. */
  maxFailures: Amount;
  /** A released device that neither succeeds nor fails this long counts as failed (ms; null: never). */
  timeoutMs: number | null;
  /** A failed device is tried again this many times before it counts as failed. */
  retries: number;
}

export const MAX_WAVES = 20;
export const DEFAULT_SUCCESS_THRESHOLD = 95;
const MAX_COUNT = 10_000_000;

function percentOf(s: string, what: string): number {
  const m = /^(\d{1,3}(?:\.\d{1,3})?)%$/.exec(s.trim());
  const n = m === null ? NaN : Number(m[1]);
  if (!(n >= 0 && n <= 100)) throw new PolicyError(`${what} must be a percentage from 0% to 100%, not ${JSON.stringify(s.slice(0, 40))}`);
  return n;
}

/** "5%" or "12" (a count), or a number (a count). */
export function parseAmount(v: unknown, what: string): Amount {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0 || v > MAX_COUNT) throw new PolicyError(`${what} must be a count from 0 to ${MAX_COUNT} or a percentage`);
    return { count: v };
  }
  if (typeof v !== 'string') throw new PolicyError(`${what} must be a percentage ("5%") or a count`);
  if (v.trim().endsWith('%')) return { percent: percentOf(v, what) };
  if (!/^\d{1,8}$/.test(v.trim())) throw new PolicyError(`${what} must be a percentage ("5%") or a count, not ${JSON.stringify(v.slice(0, 40))}`);
  return parseAmount(Number(v.trim()), what);
}

/** "1%,10%,100%", "10,100,1000", or an array of such items. */
export function parseWaves(v: unknown): Amount[] {
  const items = typeof v === 'string' ? v.split(',') : v;
  if (!Array.isArray(items) || items.length === 0) throw new PolicyError('waves must be a list such as 1%,10%,100% or 10,100,1000');
  if (items.length > MAX_WAVES) throw new PolicyError(`at most ${MAX_WAVES} waves`);
  const waves = items.map((x, i) => parseAmount(x, `wave ${i + 1}`));
  const kind = 'percent' in waves[0] ? 'percent' : 'count';
  // Counts may close with the 100% wave (a stored policy has it).
  const closing = waves.length > 1 && kind === 'count' && 'percent' in waves[waves.length - 1] && (waves[waves.length - 1] as { percent: number }).percent === 100;
  let last = -1;
  for (const [i, w] of (closing ? waves.slice(0, -1) : waves).entries()) {
    if (('percent' in w ? 'percent' : 'count') !== kind) throw new PolicyError('waves are all percentages or all counts');
    const n = 'percent' in w ? w.percent : w.count;
    if (n <= 0) throw new PolicyError(`wave ${i + 1} must be above 0`);
    if (n <= last) throw new PolicyError(`waves are cumulative: wave ${i + 1} must be larger than wave ${i}`);
    last = n;
  }
  const end = waves[waves.length - 1];
  if (!('percent' in end && end.percent === 100)) waves.push({ percent: 100 });
  return waves;
}

/** "95%" or 95 (percent). */
export function parsePercent(v: unknown, what: string): number {
  if (typeof v === 'number') {
    if (!(Number.isFinite(v) && v >= 0 && v <= 100)) throw new PolicyError(`${what} must be a percentage from 0 to 100`);
    return v;
  }
  if (typeof v !== 'string') throw new PolicyError(`${what} must be a percentage such as 95%`);
  return percentOf(v.trim().endsWith('%') ? v : `${v}%`, what);
}

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "30m", "90s", "2h", "1d", or a number of seconds; 0 or "off": none. */
export function parseDuration(v: unknown, what: string): number | null {
  if (v === 0 || v === 'off' || v === '0') return null;
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0 || v > 365 * 86_400) throw new PolicyError(`${what} must be a number of seconds up to a year`);
    return v * 1000;
  }
  const m = typeof v === 'string' ? /^(\d{1,7})([smhd]?)$/.exec(v.trim()) : null;
  if (m === null) throw new PolicyError(`${what} must be a duration such as 90s, 30m, 2h or 1d`);
  const ms = Number(m[1]) * UNITS[m[2] === '' ? 's' : m[2]];
  if (ms > 365 * 86_400_000) throw new PolicyError(`${what} must be at most a year`);
  return ms === 0 ? null : ms;
}

export interface PolicyInput {
  waves?: unknown;
  successThreshold?: unknown;
  maxFailures?: unknown;
  timeout?: unknown;
  retries?: unknown;
}

/**
 * A policy from what the operator gave. Default: one wave of everything, 95% success, and a failure
 * limit of 100% minus the success threshold (the failures that make the threshold unreachable).
 */
export function parsePolicy(o: PolicyInput): RolloutPolicy {
  const waves = o.waves === undefined ? [{ percent: 100 }] : parseWaves(o.waves);
  const successThreshold = o.successThreshold === undefined ? DEFAULT_SUCCESS_THRESHOLD : parsePercent(o.successThreshold, 'success threshold');
  const maxFailures = o.maxFailures === undefined ? { percent: Math.round((100 - successThreshold) * 1000) / 1000 } : parseAmount(o.maxFailures, 'max failures');
  const timeoutMs = o.timeout === undefined ? null : parseDuration(o.timeout, 'timeout');
  let retries = 0;
  if (o.retries !== undefined) {
    retries = typeof o.retries === 'string' && /^\d{1,2}$/.test(o.retries) ? Number(o.retries) : (o.retries as number);
    if (!Number.isSafeInteger(retries) || retries < 0 || retries > 10) throw new PolicyError('retries must be an integer from 0 to 10');
  }
  return { waves, successThreshold, maxFailures, timeoutMs, retries };
}

/** A stored policy (JSON written by us; checked all the same). */
export function policyFromJson(text: string): RolloutPolicy {
  const p = JSON.parse(text) as RolloutPolicy;
  return {
    waves: parseWaves(p.waves.map((w) => ('percent' in w ? `${w.percent}%` : w.count))),
    successThreshold: parsePercent(p.successThreshold, 'success threshold'),
    maxFailures: 'percent' in p.maxFailures ? { percent: parsePercent(p.maxFailures.percent, 'max failures') } : parseAmount(p.maxFailures.count, 'max failures'),
    timeoutMs: p.timeoutMs === null ? null : Number(p.timeoutMs),
    retries: Number(p.retries),
  };
}

/** The cumulative number of devices released by the end of each wave, out of `total`. */
export function waveTargets(waves: readonly Amount[], total: number): number[] {
  let last = 0;
  return waves.map((w, i) => {
    // As successesNeeded: 250 × 64.4% / 100 is 161.00000000000003 in floating point, not 161.
    const n = i === waves.length - 1 ? total : 'percent' in w ? Math.ceil((total * w.percent) / 100 - 1e-9) : Math.min(w.count, total);
    last = Math.max(last, Math.min(n, total));
    return last;
  });
}

/** The failures a wave of `size` devices may have before the rollout pauses (more than this pauses). */
export function failureLimit(a: Amount, size: number): number {
  return 'percent' in a ? Math.floor((size * a.percent) / 100 + 1e-9) : a.count;
}

/** Successes a wave of `size` devices needs to let the next one start. */
export function successesNeeded(threshold: number, size: number): number {
  return Math.ceil((size * threshold) / 100 - 1e-9);
}

export const amountText = (a: Amount): string => ('percent' in a ? `${a.percent}%` : String(a.count));

export function durationText(ms: number | null): string {
  if (ms === null) return 'none';
  for (const [u, n] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000]] as const) if (ms % n === 0) return `${ms / n}${u}`;
  return `${ms / 1000}s`;
}
