// Exponential backoff with optional jitter, and an abortable sleep. Both are
// injectable so tests run on a deterministic clock.

export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  factor?: number;
  /** 0..1: the delay is scaled by (1 - jitter * random()). */
  jitter?: number;
}

export type SleepFn = (ms: number, signal?: AbortSignal) => Promise<void>;

/** Delay before retry number `n` (1-based). */
export function backoffDelay(n: number, opts: BackoffOptions = {}, random: () => number = Math.random): number {
  const initial = opts.initialMs ?? 200;
  const max = opts.maxMs ?? 30_000;
  const factor = opts.factor ?? 2;
  const jitter = Math.min(1, Math.max(0, opts.jitter ?? 0));
  const base = Math.min(max, initial * Math.pow(factor, Math.max(0, n - 1)));
  return Math.round(base * (1 - jitter * random()));
}

export const defaultSleep: SleepFn = (ms, signal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason ?? new Error('aborted'));
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason ?? new Error('aborted'));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
